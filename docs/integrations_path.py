"""griffe extension: the folder `integrations/` is installed as `augshift.integrations` (pyproject's `package-dir`),
which griffe, reading the source tree, cannot know. Loading `augshift` mounts that folder's package under it, so the
API pages document `augshift.integrations.timm.AugShiftTask` — the import path — from the files of the repository
(their source links included)."""
from __future__ import annotations

import griffe


class MountIntegrations(griffe.Extension):
    """Makes the package `integrations` the member `integrations` of `augshift`, as the installed package has it."""

    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader, **kwargs) -> None:
        if pkg.name != "augshift":
            return
        integrations = loader.load("integrations")
        integrations.parent = pkg
        pkg.set_member("integrations", integrations)
