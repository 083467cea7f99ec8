"""Built-in plugins: they register the built-in components through the same
pluggy hooks a third-party plugin uses (installed as the package ``zoo_plugins``)."""
