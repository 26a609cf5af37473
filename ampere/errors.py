"""The root of Ampere's exception tree; each layer derives its own typed errors from it."""


class AmpereError(Exception):
    """Base class of every error Ampere raises on purpose."""
