"""The help screen: what each screen does and its keys."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Markdown

HELP = """\
# prism: the terminal UI

| key | does |
| --- | --- |
| **F1** | this help (Esc closes it) |
| **F2** | Recipe: pick a recipe, see it validated and summarised, Enter loads it |
| **F3** | Ingest: index the recipe's sources; progress per stage, errors per item, cancellable |
| **F4** | Search: search as you type, filters, top-k and fusion weights, why each hit ranked |
| **F5** | Eval: run a data set's queries, metrics, per-query drill-down, two recipes compared |
| **F6** | Plugins: every installed component, and plugins that failed to load |
| **F7** | Items: the stored items by filter and owner, counted; delete one or every match |
| **Ctrl+P** | command palette: screens, recipes, theme |
| **Ctrl+T** | light / dark theme |
| **Ctrl+Q** | quit |

## Search

Type a query: results follow as you type. A path to an existing file (an image, audio clip, point
cloud, video) queries with that file; its modality comes from the extension. **Ctrl+O** opens a
file picker.

- **filter**: `lang=en`, `lang!=de`, `year>=2020`, `date>=2024-01-01`, `tag=a|b` (any of),
  `tag in [a, b]`, `file prefix docs/`, `tags contains rag`, `author exists` (each with `not`:
  `title not contains draft`); several, space-separated, all must hold; quote values with spaces
  (`title="a b"`). The syntax of `prism search --filter` and of the Python API (docs/recipes.md).
- **top k**: how many hits to show (empty: the recipe's `search.top_k`).
- **weights**: each retriever's weight in the fusion; change one and watch the ranking move.

Move through the results with the arrow keys (**Ctrl+R** focuses the table, **/** the query box).
The detail panel (right, or below on a terminal under 110 columns) shows the hit: each retriever's
rank and score, its share of the fused score, each reranker's change, then the content with the
query's words highlighted (an image is drawn in the terminal) and the stored metadata. **Enter**
on a hit opens all of it full screen; there **i** copies its id and **t** its text to the
clipboard (through the terminal), **Esc** closes.

## Ingest

**i** ingests (only new and changed items are encoded), **r** rebuilds from scratch, **c** or
**Esc** cancels between batches: every batch written so far stays, and the next ingest resumes.

## Items

The filter box takes the search screen's syntax, the owner box an owner (`sources`, `python`, a
server client's); the status line counts the matches (the first 200 are listed). **Ctrl+R**
focuses the list; **Delete** there
removes the highlighted item, **Ctrl+D** every matching item (a filter or an owner is needed),
each after a question. An item from the recipe's sources comes back on the next ingest unless its
file is gone or excluded.

## Against a server (`prism tui --server URL`)

With `--server URL` (or `$PRISM_SERVER` when no recipe file is given) the TUI asks a running
`prism serve`: the search screen works as above (the same hits, provenance and filters), no
plugin and no model load here, and the server keeps the index open while you search. The API key
comes from `--api-key` or `$PRISM_API_KEY`; errors (server down, key refused, a bad filter) show
in the status line. **F2** lists the served recipes (Enter searches one; the command palette has
them too, and **Reconnect to the server**). Ingest, Eval, Items and Plugins need the index itself
and say what to do instead (the server's items endpoints, `prism ingest` on its machine). A hit's
image is drawn only when its file is also on this machine.

## Eval

Give a data folder (BEIR layout: corpus.jsonl, queries.jsonl, qrels/test.tsv) and optionally a
second recipe to compare with; **Enter** or **Ctrl+G** runs, **Ctrl+S** stops. Select a query to see its relevant items and what was
retrieved.
"""


class HelpScreen(ModalScreen[None]):
    """Keys and a short guide to each screen."""

    BINDINGS = [Binding("escape,f1,q", "dismiss", "Close")]

    def __init__(self, mode: str = "", server: str | None = None) -> None:
        super().__init__()
        self.mode = mode
        self.server = server

    def compose(self) -> ComposeResult:
        text = HELP
        if self.server:  # what differs comes first
            title, _, rest = HELP.partition("\n\n")
            text = (f"{title}\n\n> Searching **{self.server}** (see *Against a server* below): F2 lists its "
                    f"recipes; Ingest, Eval, Items and Plugins are not available here.\n\n{rest}")
        with VerticalScroll(id="help", classes="dialog"):
            yield Markdown(text)
