"""Procedural 2.5D street/material scenes and the sensor models that render them.

One scene is a set of latent layers on the image grid (all ``[H, W]`` unless noted):

- ``label`` uint8 class id (255 = unlabelled), ``inst`` int32 object index (-1 = none),
- ``depth`` float32 metres along the optical axis (``SKY_DEPTH`` for sky),
- ``height`` float32 metres above the road plane, ``angle`` float32 degrees between the
  surface normal and "up" (0 ground, 90 walls and object fronts),
- ``albedo`` float32 ``[H, W, 3]`` in [0, 1] (colour with texture), ``nir`` NIR reflectance,
  ``dolp`` degree and ``aolp`` angle (radians, [0, pi)) of linear polarisation,
  ``lidar`` LiDAR intensity and ``radar`` radar reflectivity (both in [0, 1]),
- ``flow`` per object ``(dy, dx)`` pixels per sensor frame (0 for parked/static things).

The geometry is a pinhole camera over a flat road: sky, a band of far facades/trees,
ground strips converging to the vanishing point (with kerbs raised above the road),
dashed markings on some strips and upright objects standing on the road. Class
attributes come from a per-dataset table of :class:`ClassSpec`; classes that share an
attribute in a modality cannot be told apart in that modality, which is what makes
fusion matter. Every random draw comes from the ``numpy.random.Generator`` passed in,
so a scene is reproducible from its seed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

SKY_DEPTH = 1000.0


@dataclass(frozen=True)
class ClassSpec:
    """How one class looks in every latent layer (identical specs = indistinguishable)."""

    id: int
    name: str
    role: str
    """``sky`` | ``back`` (far facade band) | ``ground`` (strip) | ``marking`` (on a host strip) | ``object``."""
    colors: tuple[tuple[int, int, int], ...]
    """Candidate base colours (uint8 RGB); one is drawn per region."""
    texture: str = "noise"
    """``flat`` | ``noise`` | ``blobs`` | ``windows`` | ``stripes``."""
    raise_m: float = 0.0
    """Ground strips: surface height above the road (a kerb)."""
    shape: str = "box"
    """Objects: ``box`` | ``car`` | ``person`` | ``pole``."""
    size_m: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)
    """Objects: height range and width range in metres."""
    speed: tuple[float, float] = (0.0, 0.0)
    """Objects: horizontal motion range in pixels per frame at 64 px (scaled with size)."""
    nir: float = 0.4
    dolp: float = 0.03
    aolp: float | None = None
    """Radians; None = diffuse (angle random per region)."""
    lidar: float = 0.3
    radar: float = 0.05
    weight: float = 1.0
    host: int | None = None
    """Markings: class id of the ground strip they are painted on."""


@dataclass(frozen=True)
class Layout:
    """Camera and scene-composition ranges of one dataset."""

    cam_height: float = 1.6
    focal: float = 0.9
    """Focal length as a fraction of the visible width."""
    horizon: tuple[float, float] = (0.32, 0.45)
    back_depth: tuple[float, float] = (25.0, 60.0)
    back_height: tuple[float, float] = (6.0, 30.0)
    back_segment: tuple[float, float] = (0.15, 0.45)
    strip_width: tuple[float, float] = (2.5, 7.0)
    n_objects: tuple[int, int] = (3, 7)
    object_depth: tuple[float, float] = (4.0, 22.0)
    marking_width: float = 0.5
    unlabelled: float = 0.002
    """Fraction of pixels left unlabelled (255) at random."""


@dataclass
class Scene:
    """Latent layers of one sample (see the module docstring)."""

    label: np.ndarray
    inst: np.ndarray
    depth: np.ndarray
    height: np.ndarray
    angle: np.ndarray
    albedo: np.ndarray
    nir: np.ndarray
    dolp: np.ndarray
    aolp: np.ndarray
    lidar: np.ndarray
    radar: np.ndarray
    flow: list[tuple[int, int]] = field(default_factory=list)

    @property
    def sky(self) -> np.ndarray:
        return self.depth >= SKY_DEPTH


def _pick(rng: np.random.Generator, specs: list[ClassSpec]) -> ClassSpec:
    w = np.array([s.weight for s in specs], dtype=np.float64)
    return specs[int(rng.choice(len(specs), p=w / w.sum()))]


class _Painter:
    """Writes one region's attributes into the scene layers."""

    def __init__(self, h: int, w: int, rng: np.random.Generator) -> None:
        self.rng = rng
        self.noise = rng.standard_normal((h, w)).astype(np.float32)
        blobs = cv2.GaussianBlur(rng.standard_normal((h, w)).astype(np.float32), (0, 0), max(1.0, w / 40))
        self.blobs = blobs / (blobs.std() + 1e-6)
        self.yy, self.xx = np.mgrid[0:h, 0:w].astype(np.float32)
        f32 = np.float32
        self.s = Scene(
            label=np.full((h, w), 255, np.uint8), inst=np.full((h, w), -1, np.int32),
            depth=np.full((h, w), SKY_DEPTH, f32), height=np.zeros((h, w), f32), angle=np.zeros((h, w), f32),
            albedo=np.zeros((h, w, 3), f32), nir=np.zeros((h, w), f32), dolp=np.zeros((h, w), f32),
            aolp=np.zeros((h, w), f32), lidar=np.zeros((h, w), f32), radar=np.zeros((h, w), f32),
        )  # fmt: skip

    def texture(self, kind: str, m: np.ndarray) -> np.ndarray:
        rng = self.rng
        if kind == "noise":
            return 0.10 * self.noise[m]
        if kind == "blobs":
            return 0.22 * self.blobs[m] + 0.06 * self.noise[m]
        if kind == "windows":
            p = float(rng.uniform(4, 7))
            ox, oy = rng.uniform(0, p, 2)
            win = (((self.xx[m] + ox) % p) < p * 0.5) & (((self.yy[m] + oy) % p) < p * 0.55)
            return -0.35 * win + 0.05 * self.noise[m]
        if kind == "stripes":
            p = float(rng.uniform(3, 5))
            return 0.15 * np.sign(np.sin(2 * np.pi * (self.yy[m] + rng.uniform(0, p)) / p)) + 0.05 * self.noise[m]
        return np.zeros(int(m.sum()), np.float32)

    def paint(self, m: np.ndarray, spec: ClassSpec, geometry: bool = True, **geo: np.ndarray | float) -> None:
        """Paint ``spec`` into mask ``m``; ``geo``: depth/height/angle/inst (arrays over ``m`` or scalars)."""
        if not m.any():
            return
        rng, s = self.rng, self.s
        s.label[m] = spec.id
        color = np.array(spec.colors[int(rng.integers(len(spec.colors)))], np.float32) / 255.0
        color = color * rng.uniform(0.85, 1.15) + rng.normal(0.0, 0.03, 3)
        tex = self.texture(spec.texture, m)
        s.albedo[m] = np.clip(color[None, :] * (1.0 + tex[:, None]), 0.0, 1.0)
        s.nir[m] = np.clip(spec.nir * rng.uniform(0.9, 1.1) * (1.0 + 0.5 * tex), 0.0, 1.0)
        s.dolp[m] = np.clip(spec.dolp * rng.uniform(0.85, 1.15), 0.0, 1.0)
        s.aolp[m] = (spec.aolp + rng.normal(0, 0.08) if spec.aolp is not None else rng.uniform(0, np.pi)) % np.pi
        s.lidar[m] = spec.lidar * rng.uniform(0.9, 1.1)
        s.radar[m] = spec.radar * rng.uniform(0.8, 1.2)
        if geometry:
            for key in ("depth", "height", "angle", "inst"):
                if key in geo:
                    getattr(s, key)[m] = geo[key]


def make_scene(specs: list[ClassSpec], layout: Layout, h: int, w: int, rng: np.random.Generator, x0: int = 0) -> Scene:
    """Draw one scene of size ``h x w``; columns ``[x0:]`` are the visible window (MCubeS crops the rest)."""
    by_role: dict[str, list[ClassSpec]] = {}
    for sp in specs:
        by_role.setdefault(sp.role, []).append(sp)
    p = _Painter(h, w, rng)
    s, yy, xx = p.s, p.yy, p.xx
    vis_w = w - x0
    f = layout.focal * vis_w
    hc = layout.cam_height
    h0 = h * rng.uniform(*layout.horizon)
    cx = x0 + vis_w * rng.uniform(0.35, 0.65)
    scale = vis_w / 64.0

    # sky
    if "sky" in by_role:
        p.paint(np.ones((h, w), bool), by_role["sky"][0], depth=SKY_DEPTH, height=0.0, angle=0.0)
    # far band of facades / trees, in segments
    back_base = np.full(w, h0, np.float32)
    x = 0
    while x < w:
        seg = int(max(2, vis_w * rng.uniform(*layout.back_segment)))
        zb = rng.uniform(*layout.back_depth)
        top = h0 - rng.uniform(*layout.back_height) * f / zb
        base = h0 + hc * f / zb
        back_base[x : x + seg] = base
        m = (xx >= x) & (xx < x + seg) & (yy >= top) & (yy < base)
        p.paint(m, _pick(rng, by_role["back"]), depth=zb, height=(base - yy[m]) * zb / f, angle=90.0)
        x += seg
    # ground strips, bounded in lateral metres and converging to the vanishing point
    below = np.maximum(yy - h0, 1e-3)
    ground = yy >= back_base[None, :]
    zg = hc * f / below
    lat = (xx - cx) * zg / f
    edges = [-1e6]
    pos = -rng.uniform(*layout.strip_width) * rng.uniform(0.2, 1.5)
    while pos < 40.0:
        edges.append(pos)
        pos += rng.uniform(*layout.strip_width)
    edges.append(1e6)
    ground_specs, markings = by_role["ground"], by_role.get("marking", [])
    prev = None
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        choices = [g for g in ground_specs if g is not prev] or ground_specs
        sp = _pick(rng, choices)
        prev = sp
        m = ground & (lat >= a) & (lat < b)
        z = (hc - sp.raise_m) * f / below[m]
        p.paint(m, sp, depth=np.minimum(z, SKY_DEPTH - 1), height=sp.raise_m, angle=0.0)
        for mk in markings:
            if mk.host == sp.id and rng.random() < 0.8 and np.isfinite(a) and np.isfinite(b):
                c = 0.5 * (a + b) + rng.uniform(-0.25, 0.25) * (b - a)
                period = rng.uniform(4.0, 8.0)
                dash = m & (np.abs(lat - c) < layout.marking_width / 2) & ((zg % period) < 0.6 * period)
                p.paint(dash, mk, geometry=False)
    # upright objects, painted far to near
    objects = by_role.get("object", [])
    n = int(rng.integers(layout.n_objects[0], layout.n_objects[1] + 1)) if objects else 0
    drawn = [(float(rng.uniform(*layout.object_depth)), _pick(rng, objects)) for _ in range(n)]
    for z, sp in sorted(drawn, key=lambda t: -t[0]):
        hm, wm = rng.uniform(*sp.size_m[:2]), rng.uniform(*sp.size_m[2:])
        xc = x0 + rng.uniform(0.05, 0.95) * vis_w
        yb = h0 + hc * f / z
        ph, pw = hm * f / z, max(wm * f / z, 1.2)
        top, left = yb - ph, xc - pw / 2
        m = (yy >= top) & (yy < yb) & (xx >= left) & (xx < left + pw)
        u, v = (xx - left) / pw, (yy - top) / ph  # box coordinates in [0, 1)
        if sp.shape == "car":
            m &= (v > 0.4) | ((u > 0.2) & (u < 0.8))
        elif sp.shape == "person":
            body = (v > 0.2) & (np.abs(u - 0.5) < 0.5 - 0.2 * (v > 0.55))
            m &= body | ((u - 0.5) ** 2 + ((v - 0.1) * 2) ** 2 < 0.09)  # head
        if not m.any():
            continue
        k = len(s.flow)
        speed = rng.uniform(*sp.speed) * scale
        s.flow.append((0, int(round(speed)) * (1 if rng.random() < 0.5 else -1)))
        p.paint(m, sp, depth=z, height=(yb - yy[m]) * z / f, angle=90.0, inst=k)
    # a few unlabelled pixels, as in real annotations
    s.label[rng.random((h, w)) < layout.unlabelled] = 255
    return s


# ------------------------------------------------------------------ sensor models
@dataclass(frozen=True)
class Look:
    """Imaging condition of the RGB camera (and what the weather does to other sensors)."""

    light: float = 1.0
    fog: float = 0.0
    """Extinction per metre (RGB blends to grey with ``exp(-fog * depth)``)."""
    rain: bool = False
    snow: bool = False
    night: bool = False
    noise: float = 0.015
    blur: int = 0
    """Horizontal motion-blur length in pixels at 64 px."""
    exposure: float = 1.0


LOOKS: dict[str, Look] = {
    "sun": Look(light=1.0),
    "clear": Look(light=1.0),
    "cloud": Look(light=0.7, noise=0.02),
    "fog": Look(light=0.8, fog=0.09, noise=0.02),
    "rain": Look(light=0.6, rain=True, noise=0.03),
    "snow": Look(light=0.85, snow=True, noise=0.03),
    "night": Look(light=0.07, night=True, noise=0.05),
}


def look_for(*conditions: str) -> Look:
    """Combine conditions (``fog``, ``night``, ``motionblur``, ``overexposure`` ...) into one :class:`Look`."""
    lk = Look()
    for c in conditions:
        if c in LOOKS:
            o = LOOKS[c]
            lk = Look(
                light=lk.light * o.light, fog=max(lk.fog, o.fog), rain=lk.rain or o.rain, snow=lk.snow or o.snow,
                night=lk.night or o.night, noise=max(lk.noise, o.noise), blur=lk.blur, exposure=lk.exposure,
            )  # fmt: skip
        elif c == "motionblur":
            lk = Look(**{**lk.__dict__, "blur": 7})
        elif c == "overexposure":
            lk = Look(**{**lk.__dict__, "exposure": 3.5})
        elif c == "underexposure":
            lk = Look(**{**lk.__dict__, "exposure": 0.12})
    return lk


def render_rgb(s: Scene, look: Look, rng: np.random.Generator) -> np.ndarray:
    """Camera image, uint8 ``[H, W, 3]``: shading, light, fog, rain/snow, blur, exposure, sensor noise."""
    h, w = s.label.shape
    img = s.albedo * np.where(s.angle > 45, 0.8, 1.0)[..., None].astype(np.float32)
    img = img * look.light
    if look.night:
        near = np.exp(-np.minimum(s.depth, 100.0) / 8.0)
        xx = np.arange(w, dtype=np.float32)[None, :] / w
        cone = np.exp(-(((xx - 0.5) / 0.35) ** 2))
        img = img + s.albedo * (0.6 * near * cone)[..., None]
        for _ in range(int(rng.integers(1, 4))):  # street lights
            cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(0.1, 0.3) * w
            yy, xg = np.mgrid[0:h, 0:w]
            img = img + s.albedo * (0.5 * np.exp(-((yy - cy) ** 2 + (xg - cx) ** 2) / (2 * r * r)))[..., None]
        img[s.sky] = 0.02
    if look.fog > 0:
        t = np.exp(-look.fog * s.depth)[..., None]
        img = img * t + (0.75 * min(1.0, look.light * 1.2)) * (1 - t)
    if look.rain or look.snow:
        img = cv2.blur(img, (3, 3)) if look.rain else img
        n = int(h * w * (0.02 if look.rain else 0.03))
        ys, xs = rng.integers(0, h, n), rng.integers(0, w, n)
        ln = 4 if look.rain else 1
        for k in range(ln):  # streaks fall diagonally; snow flakes are dots
            yk, xk = np.clip(ys + k, 0, h - 1), np.clip(xs + k // 2, 0, w - 1)
            img[yk, xk] = img[yk, xk] * 0.5 + (0.35 if look.rain else 0.5)
    if look.blur:
        k = max(2, int(round(look.blur * w / 64)))
        img = cv2.blur(img, (k, 1))
    img = img * look.exposure
    img = img + rng.normal(0.0, look.noise, img.shape).astype(np.float32)
    return np.clip(np.round(img * 255.0), 0, 255).astype(np.uint8)


def _shift(m: np.ndarray, dy: int, dx: int) -> np.ndarray:
    out = np.zeros_like(m)
    h, w = m.shape
    out[max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = m[max(-dy, 0) : h - max(dy, 0),
                                                                       max(-dx, 0) : w - max(dx, 0)]  # fmt: skip
    return out


def render_events(s: Scene, rng: np.random.Generator, noise: float = 0.01, ego: float = 0.03) -> np.ndarray:
    """Event counts in one sensor frame, int32 ``[H, W, 2]`` (positive, negative).

    Moving objects fire at their leading and trailing edges (polarity from their contrast
    with the surroundings) and at their inner texture edges; static structure fires only
    through rare ego-motion events at strong edges; plus background noise.
    """
    h, w = s.label.shape
    ev = np.zeros((h, w, 2), np.int32)
    lum = np.log(s.albedo.mean(axis=2) + 0.05)
    gx = np.abs(np.diff(lum, axis=1, append=lum[:, -1:]))
    for k, (dy, dx) in enumerate(s.flow):
        if dx == 0 and dy == 0:
            continue
        vis = s.inst == k
        if not vis.any():
            continue
        ring = cv2.dilate(vis.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool) & ~vis
        brighter = lum[vis].mean() >= (lum[ring].mean() if ring.any() else lum.mean())
        moved = _shift(vis, dy, dx)
        lead, trail = moved & ~vis, vis & ~moved
        inner = vis & (gx > 0.15) & (rng.random((h, w)) < 0.6)
        for mask, pol in ((lead, brighter), (trail, not brighter), (inner, None)):
            cnt = rng.integers(1, 4, (h, w))
            sign = rng.random((h, w)) < 0.5 if pol is None else np.full((h, w), pol)
            ev[..., 0] += np.where(mask & sign, cnt, 0)
            ev[..., 1] += np.where(mask & ~sign, cnt, 0)
    static = (gx > 0.3) & (rng.random((h, w)) < ego)
    on = rng.random((h, w)) < noise
    pol = rng.random((h, w)) < 0.5
    ev[..., 0] += (static | on) & pol
    ev[..., 1] += (static | on) & ~pol
    return ev


def lidar_points(
    s: Scene,
    rng: np.random.Generator,
    lines: int,
    dropout: float = 0.25,
    max_range: float = 80.0,
    jitter: float = 0.0,
    clutter: float = 0.0,
) -> tuple[np.ndarray, ...]:
    """Sparse LiDAR returns projected to the image: ``(rows, cols, range_m, intensity, height_m)``.

    Scan lines are evenly spaced rows below the top fifth; each column of a line returns with
    probability ``1 - dropout``; sky and targets beyond ``max_range`` give nothing. ``jitter``
    displaces points by up to that many pixels (DELIVER ``lidarjitter``); ``clutter`` adds
    spurious near returns (snow, fog).
    """
    h, w = s.label.shape
    rows_line = np.unique(np.linspace(h * 0.2, h - 1, lines).round().astype(int))
    rr, cc = np.meshgrid(rows_line, np.arange(w), indexing="ij")
    rr, cc = rr.ravel(), cc.ravel()
    rng_m = s.depth[rr, cc] / np.maximum(np.cos(np.arctan((cc - w / 2) / w)), 0.5)
    keep = (rng.random(rr.size) >= dropout) & (s.depth[rr, cc] < SKY_DEPTH) & (rng_m < max_range)
    rr, cc, rng_m = rr[keep], cc[keep], rng_m[keep] * (1 + rng.normal(0, 0.01, keep.sum()))
    inten, hgt = s.lidar[rr, cc] * rng.uniform(0.9, 1.1, rr.size), s.height[rr, cc].copy()
    if clutter > 0:
        n = int(clutter * rr.size)
        cr, ccl = rng.integers(0, h, n), rng.integers(0, w, n)
        rr, cc = np.concatenate([rr, cr]), np.concatenate([cc, ccl])
        rng_m = np.concatenate([rng_m, rng.uniform(1.0, 8.0, n)])
        inten = np.concatenate([inten, rng.uniform(0.0, 0.2, n)])
        hgt = np.concatenate([hgt, rng.uniform(0.0, 2.5, n)])
    if jitter > 0:
        j = int(np.ceil(jitter))
        rr = np.clip(rr + rng.integers(-j, j + 1, rr.size), 0, h - 1)
        cc = np.clip(cc + rng.integers(-j, j + 1, cc.size), 0, w - 1)
        rng_m = rng_m * (1 + rng.normal(0, 0.05, rng_m.size))
    return rr, cc, rng_m.astype(np.float32), inten.astype(np.float32), hgt.astype(np.float32)


def hha(s: Scene) -> np.ndarray:
    """HHA-style encoding of the depth, uint8 ``[H, W, 3]``: disparity, height above ground, normal angle.

    disparity = 255 * min(1, 2 m / depth); height = 40 * metres (clipped at 255);
    angle = 255 * degrees / 180 between the surface normal and up; sky = (0, 0, 0).
    """
    disp = np.clip(255.0 * 2.0 / np.maximum(s.depth, 1e-3), 0, 255)
    hgt = np.clip(40.0 * s.height, 0, 255)
    ang = 255.0 * s.angle / 180.0
    out = np.stack([disp, hgt, ang], axis=-1)
    out[s.sky] = 0
    return np.round(out).astype(np.uint8)


def polarisation(s: Scene, rng: np.random.Generator, noise: float = 0.03) -> tuple[np.ndarray, np.ndarray]:
    """Measured ``(dolp, aolp)`` float32 ``[H, W]``: Stokes vector plus sensor noise, so that the
    angle of weakly polarised (diffuse) surfaces is random, as with a real polarisation camera."""
    s1 = s.dolp * np.cos(2 * s.aolp) + rng.normal(0, noise, s.dolp.shape)
    s2 = s.dolp * np.sin(2 * s.aolp) + rng.normal(0, noise, s.dolp.shape)
    dolp = np.clip(np.hypot(s1, s2), 0.0, 1.0).astype(np.float32)
    aolp = (0.5 * np.arctan2(s2, s1)) % np.pi
    return dolp, aolp.astype(np.float32)


# ------------------------------------------------------------------ what each modality can see
def signature(spec: ClassSpec, kind: str, specs: list[ClassSpec]) -> tuple:
    """What a sensor of ``kind`` measures of a class: equal signatures = indistinguishable.

    ``appearance`` colour, texture and silhouette; ``geometry`` depth/height/normals (a marking
    has its host strip's geometry); ``lidar`` geometry plus LiDAR intensity; ``motion`` events
    (only moving objects fire, revealing their silhouette); ``radar`` coarse geometry plus
    reflectivity; ``nir``, ``dolp``, ``aolp`` the material attribute (aolp is noise below dolp 0.1).
    """
    host = next((h for h in specs if h.id == spec.host), spec)
    obj = spec.role == "object"
    geo = (host.role, host.raise_m, spec.shape if obj else "", spec.size_m if obj else ())
    if kind == "appearance":
        return (spec.colors, spec.texture, geo[2:])
    if kind == "geometry":
        return geo
    if kind == "lidar":
        return (*geo, host.lidar if spec.role == "marking" else spec.lidar)
    if kind == "motion":
        return (spec.shape, spec.size_m) if spec.role == "object" and spec.speed[1] > 0 else ()
    if kind == "radar":
        return (host.role, spec.radar)
    if kind == "nir":
        return (spec.nir,)
    if kind == "dolp":
        return (spec.dolp,)
    if kind == "aolp":
        return (spec.aolp,) if spec.dolp >= 0.1 else ()
    raise ValueError(f"unknown sensor kind {kind!r}")


def visibility(specs: list[ClassSpec], kinds: dict[str, str]) -> list[tuple[str, tuple[str, ...]]]:
    """``[(class, modalities in which its signature is unique)]`` in class-id order."""
    rows = []
    for sp in sorted(specs, key=lambda s: s.id):
        seen = []
        for modality, kind in kinds.items():
            mine = signature(sp, kind, specs)
            if all(signature(o, kind, specs) != mine for o in specs if o is not sp):
                seen.append(modality)
        rows.append((sp.name, tuple(seen)))
    return rows
