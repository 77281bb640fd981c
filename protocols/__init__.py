"""The protocol cards shipped with rsbench (YAML data; installed as the package ``rsbench.cards_protocols``)."""
