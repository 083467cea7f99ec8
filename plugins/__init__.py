"""Plugins shipped with the zoo (installed as the package ``zoo_plugins``): named
models and the ``ngram-embedding`` encoder, registered through the same pluggy
hooks a third-party plugin uses. The built-in components register themselves
in the ``zoo_core`` modules that define them."""
