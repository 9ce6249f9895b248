"""mkdocs hook: keep the nav in step with the pages, and publish ``examples/``.

Entries in ``mkdocs.yml``'s nav whose page does not exist (yet) are dropped,
and pages in ``docs/`` that the nav does not list are appended under
"More", so engineers can add and remove pages without breaking the
``--strict`` build. The scripts and images in ``examples/`` are copied into
the site under ``examples/``, and the pages' links to ``../examples/...``
(which work when browsing the repository) are pointed at those copies.
"""

from __future__ import annotations

import os
import re

from mkdocs.structure.files import File

_EXAMPLE_LINK = re.compile(r"\]\(\.\./examples/")


def _prune(items, existing, listed):
    out = []
    for item in items:
        if isinstance(item, dict):
            ((title, value),) = item.items()
            if isinstance(value, list):
                kept = _prune(value, existing, listed)
                if kept:
                    out.append({title: kept})
            elif value in existing or "://" in value:
                listed.add(value)
                out.append(item)
        elif isinstance(item, str) and item in existing:
            listed.add(item)
            out.append(item)
    return out


def on_files(files, config):
    root = os.path.dirname(os.path.abspath(config["config_file_path"]))
    examples = os.path.join(root, "examples")
    if os.path.isdir(examples):
        for dirpath, _, names in os.walk(examples):
            for name in sorted(names):
                if name.endswith((".py", ".png", ".svg", ".csv")):
                    rel = os.path.relpath(os.path.join(dirpath, name), root).replace(os.sep, "/")
                    files.append(File(rel, root, config["site_dir"], config["use_directory_urls"]))
    pages = sorted(f.src_uri for f in files.documentation_pages())
    listed: set[str] = set()
    nav = _prune(config.get("nav") or [], set(pages), listed)
    extra = [p for p in pages if p not in listed]
    if extra:
        nav.append({"More": extra})
    config["nav"] = nav
    return files


def on_page_markdown(markdown, page, config, files):
    return _EXAMPLE_LINK.sub("](examples/", markdown)
