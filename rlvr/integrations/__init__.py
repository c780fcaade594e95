"""The OCaml reward and data in other RL engines' own formats: OpenRLHF's reward_func file and verl's
custom reward function and parquet layout (doc/scaling.md)."""
