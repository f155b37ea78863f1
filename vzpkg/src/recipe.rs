//! Recipes (`recipes/NAME.toml`). OWNER: lead.
