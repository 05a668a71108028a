"""`huggingface_hub` on demand, repo ids checked, the Hub's errors as messages saying what to do."""

import importlib

_INSTALL_HINT = "pip install 'keras-sgm[hub]'"
_LOGIN_HINT = (
    "log in with `hf auth login` (or `huggingface-cli login`), set the HF_TOKEN "
    "environment variable, or pass a token (scripts/push_to_hub.py: --token-env VAR)"
)


def _import_hub(what):
    try:
        return importlib.import_module("huggingface_hub")
    except ImportError as error:
        raise ImportError(f"{what} needs huggingface_hub: {_INSTALL_HINT}.") from error


def _validate_repo_id(hub, repo_id, prefix):
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(repo_id)
    except ValueError as error:  # huggingface_hub's HFValidationError
        raise ValueError(
            f"{prefix} a valid Hub repo id ('ORG/NAME', letters, digits, '-', '_', '.'): "
            f"{repo_id!r}."
        ) from error
    if "/" not in repo_id:
        raise ValueError(f"{prefix} a valid Hub repo id: {repo_id!r} lacks its 'ORG/' part.")


def _hub_errors():
    from huggingface_hub import errors

    return (errors.HfHubHTTPError,)


def _network_errors():
    """Exception types that mean "the Hub could not be reached" (and nothing is cached)."""
    from huggingface_hub import errors

    found = [ConnectionError, TimeoutError, errors.LocalEntryNotFoundError]
    for module, names in (
        ("httpx2", ("TransportError",)),  # huggingface_hub >= 1.0
        ("httpx", ("TransportError",)),
        ("requests", ("ConnectionError", "Timeout")),  # huggingface_hub < 1.0
    ):
        try:
            imported = importlib.import_module(module)
        except ImportError:
            continue
        found += [getattr(imported, n) for n in names if hasattr(imported, n)]
    return tuple(found)


def _scrubbed(error, token):
    """The first line of an error's message, with the token (if any) masked."""
    message = str(error).splitlines()[0] if str(error) else type(error).__name__
    return message.replace(token, "***") if token else message


def _http_error(error, doing, token):
    """A clear error for an HTTP failure of the Hub, with any token scrubbed out."""
    response = getattr(error, "response", None)
    status = getattr(response, "status_code", None)
    message = _scrubbed(error, token)
    if status in (401, 403):
        return PermissionError(
            f"The Hugging Face Hub refused {doing} (HTTP {status}): the token is invalid or "
            f"lacks write access to that namespace; {_LOGIN_HINT}."
        )
    return OSError(f"The Hugging Face Hub failed {doing} (HTTP {status}): {message}")
