"""stream_app: the Faust app that joins decisions and outcomes into rewards and updates Redis."""

__all__: list[str] = []
