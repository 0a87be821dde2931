"""Turning engine errors into messages on the page.

The engine raises :class:`~resque_core.errors.ResqueError` subclasses whose text is a complete
sentence a user can act on. Pages run engine calls inside :func:`user_errors`: the message is
shown with ``st.error`` and the page goes on rendering, so nothing already on screen or in the
session is lost. Any other exception is a bug and propagates.

The message holds user text (labels, file names, plan names), so it is shown as plain text:
Markdown in it (links, images, emphasis) is escaped, and upload paths are shown as the uploaded
file's name.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import streamlit as st

from resque_core import ResqueError

__all__ = ["ErrorBox", "user_errors"]


class ErrorBox:
    """Set by :func:`user_errors`: ``failed`` is True and ``message`` holds the error's text."""

    def __init__(self) -> None:
        self.failed = False
        self.message = ""


@contextmanager
def user_errors(what: str = "") -> Iterator[ErrorBox]:
    """Run a block; a ResqueError inside it is shown as ``st.error`` and swallowed.

    ``what`` prefixes the message ("Could not load the checkpoint: ..."). Use the yielded box to
    know whether the block failed::

        with user_errors("Could not load the checkpoint") as box:
            ckpt = cached.checkpoint(...)
        if box.failed:
            st.stop()
    """
    box = ErrorBox()
    try:
        yield box
    except ResqueError as e:
        from . import state
        from .views import md_text, ui_words  # views shows errors through this module

        text = ui_words(state.display(str(e)))
        box.failed, box.message = True, text
        shown = md_text(text)
        st.error(f"{what}: {shown}" if what else shown[:1].upper() + shown[1:], icon="⚠️")
