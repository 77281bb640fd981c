"""The method cards shipped with rsbench (YAML data; installed as the package ``rsbench.cards_methods``)."""
