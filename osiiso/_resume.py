"""A fan-out with ``checkpoint=``: keys, namespaces, restored handles and watched ones.

Every input gets a key, all the keys are looked up at once, then each input in turn becomes
a restored handle (its stored value, `Engine.restore`) or a submitted task whose value the
`Checkpoint` stores when it succeeds. Nothing is submitted until every key is known and
every call is checked, so a bad input leaves the queue as it was.
"""

from __future__ import annotations

import functools
import gc
import json
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ._checkpoint import Checkpoint, Key
from ._checkpoint_file import short
from ._errors import ClosedError
from ._handle import TaskHandle

if TYPE_CHECKING:
    from ._intake import Call, Intake
    from ._options import TaskOptions

__all__ = ("submit_checkpointed",)

#: canonical JSON for keys: sorted object keys, no spaces, text as is
_KEY_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
_quote: Callable[[str], str] = json.encoder.encode_basestring
#: the same JSON in ASCII, for an input whose text SQLite cannot store (a lone surrogate, as
#: ``os.fsdecode`` gives for a file name that is not UTF-8): its escapes tell it from every other key
_ASCII_KEY_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def _not_json(value: object) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _key_encoder() -> Callable[[Any], str]:
    """``_KEY_JSON.encode``, made once: the stdlib makes its C encoder anew on every call."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # pragma: no cover - CPython and PyPy have it
        return _KEY_JSON.encode
    encoder = make(None, _not_json, _quote, None, ":", ",", True, False, True)

    def encode(value: Any) -> str:
        return "".join(encoder(value, 0))

    return encode


_encode_key = _key_encoder()
_RESTORED = "restored from checkpoint"
_NO_KWARGS: dict[str, Any] = {}  # a restored handle's (never mutated)
_MISSING: Any = object()


def default_namespace(fn: Any, where: str) -> str:
    """The function's qualified name, with a partial's bound arguments as canonical JSON."""
    target, bound = fn, None
    if isinstance(fn, functools.partial):
        target = fn.func
        if fn.args or fn.keywords:
            bound = [list(fn.args), fn.keywords]
    name = getattr(target, "__qualname__", None)
    if not isinstance(name, str):
        name = type(target).__qualname__
    if "<lambda>" in name:
        raise ValueError(f"{where}: a lambda has no name to keep its checkpointed values under ({fn!r}) — "
                         "pass namespace='...', or use a def")
    if bound is not None:
        try:
            name += _KEY_JSON.encode(bound)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{where}: the arguments bound by {short(fn)} cannot name its checkpointed values "
                             f"({exc}) — pass namespace='...'") from None
    return name


def _keys(items: Sequence[Any], calls: Sequence[Call] | None, key: Callable[[Any], Key] | None,
          where: str) -> list[Key]:
    """One key per input: ``key(item)``, else the canonical JSON of the call (``calls``: a list of calls)."""
    keys: list[Key] = []
    if key is not None:
        for index, item in enumerate(items):
            made = key(item)
            if not isinstance(made, (str, bytes)):
                raise TypeError(f"{where}: key= must return str or bytes, got {short(made)} for input {index} "
                                f"({short(item)}) — return a string that identifies the input")
            if isinstance(made, str) and not (made.isascii() or _utf8(made)):
                raise TypeError(f"{where}: key= returned {short(made)} for input {index}, a str with a lone "
                                "surrogate that SQLite cannot store — return bytes (os.fsencode(...)) or valid text")
            keys.append(made)
        return keys
    encode, quote, append = _encode_key, _quote, keys.append
    try:
        if calls is None:  # map: the arguments, positional ones as an array, keyword ones as an object
            for item in items:
                if type(item) is str:
                    append(f"[{quote(item)}]")  # the common case, ten times faster
                else:
                    append(encode(item if isinstance(item, (tuple, dict)) else (item,)))
        else:  # group([(fn, *args), ...]): the function's name, then the arguments
            for fn, args, _ in calls:
                append(encode([default_namespace(fn, where), *args]))
    except (TypeError, ValueError, RecursionError) as exc:
        index = len(keys)
        raise TypeError(f"{where}: cannot make a checkpoint key from input {index} ({short(items[index])}): {exc} "
                        "— pass key=<a function of the input returning str or bytes>") from None
    for index, made in enumerate(keys):
        if isinstance(made, str) and not (made.isascii() or _utf8(made)):
            if calls is None:
                item = items[index]
                shaped: Any = item if isinstance(item, (tuple, dict)) else (item,)
            else:
                shaped = [default_namespace(calls[index][0], where), *calls[index][1]]
            keys[index] = _ASCII_KEY_JSON.encode(shaped)
    return keys


def _utf8(text: str) -> bool:
    """Whether ``text`` can be stored as SQLite text (UTF-8): not if it holds a lone surrogate."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _check_unique(keys: list[Key], where: str) -> None:
    if len(set(keys)) == len(keys):
        return
    first: dict[Key, int] = {}
    for index, key in enumerate(keys):
        seen = first.setdefault(key, index)
        if seen != index:
            raise ValueError(f"{where}: inputs {seen} and {index} have the same checkpoint key {short(key)} — a "
                             "checkpoint keeps one value per key: drop the duplicate, or pass key= to tell them apart")


def submit_checkpointed(queue: Intake, items: Sequence[Any], calls: list[Call] | None,
                        options: TaskOptions, checkpoint: object, key: Callable[[Any], Key] | None,
                        namespace: str | None, where: str, *, fn: Any = None, group_id: str | None = None,
                        split: Callable[[Any], tuple[tuple[Any, ...], dict[str, Any]]] | None = None,
                        ) -> list[TaskHandle[Any]]:
    """Submit one task per input, restoring the inputs ``checkpoint`` already holds.

    Either ``fn`` is mapped over ``items`` (``calls`` is None; ``split`` makes an item's
    arguments, for the inputs that run), or ``calls`` come from ``group([(fn, *args), ...])``
    (``items``), whose default namespace is an explicit ``group_id``. Returns one handle per
    input, in order.
    """
    if not isinstance(checkpoint, Checkpoint):
        if checkpoint is None:
            raise TypeError(f"{where}: key= and namespace= go with checkpoint= — pass checkpoint=Checkpoint(path)")
        raise TypeError(f"{where}: checkpoint= takes an osiiso.Checkpoint, got {short(checkpoint)}")
    if key is not None and not callable(key):
        raise TypeError(f"{where}: key= takes a function of the input returning str or bytes, got {short(key)}")
    if namespace is None:
        if calls is None:
            namespace = default_namespace(fn, where)
        elif group_id is not None:
            namespace = group_id
        else:
            raise ValueError(f"{where}: a checkpointed group([(fn, *args), ...]) needs a stable name — pass "
                             "namespace= (or group_id=): a generated group id changes every run")
    if not isinstance(namespace, str) or not namespace:
        raise TypeError(f"{where}: namespace= takes a non-empty str, got {short(namespace)}")
    if not (namespace.isascii() or _utf8(namespace)):
        raise ValueError(f"{where}: namespace {short(namespace)} holds a lone surrogate, which SQLite cannot store "
                         "— pass namespace= as valid text")
    keys = _keys(items, calls, key, where)
    _check_unique(keys, where)
    if queue._closed:
        raise ClosedError("the queue is shut down and accepts no new task — create a new queue "
                          "(or call reset() once it is idle)")
    if calls is None:  # one function: checked once, as every call would be
        assert split is not None
        routes = [queue._lane_for(fn, *split(items[0]), options)] * len(items) if items else []
    else:
        routes = [queue._lane_for(f, args, kwargs, options) for f, args, kwargs in calls]
    # restoring creates a few objects per input that all live on: the collector would go over
    # them again and again (a fifth of the time for 100,000 inputs), so it waits until the end
    collecting = gc.isenabled()
    gc.disable()
    try:
        found = checkpoint._lookup(namespace, keys)
        queue._check_room(len(items) - len(found))
        engine, seq = queue._restorer()
        restore = engine.restore
        now = time.time()
        handles: list[TaskHandle[Any]] = []
        append = handles.append
        for item, k, (lane, fn_name) in zip(items if calls is None else calls, keys, routes, strict=True):
            f = fn if calls is None else item[0]
            value = found.get(k, _MISSING)
            if value is not _MISSING:
                handle: TaskHandle[Any] = TaskHandle(engine, next(seq), f, (), _NO_KWARGS, options,
                                                     lane.backend.name, options.name or fn_name, now)
                restore(handle, value, _RESTORED)
            else:
                args, kwargs = split(item) if split is not None else item[1:]
                handle = queue._enqueue(f, args, kwargs, options)
                checkpoint._watch(handle, namespace, k)
            append(handle)
    finally:
        if collecting:
            gc.enable()
    return handles
