"""Render synthetic text pages with transcripts in GOT's annotation format.

python tools/make_synthetic.py --output data/synthetic --count 200 --script digits
python tools/make_synthetic.py --output data/guji-like --script cjk --layout vertical --lines 6 --width 600 --height 800
"""

from __future__ import annotations

from jsonargparse import CLI

from got_lightning.data.synthetic import DEFAULT_PROMPT, PageStyle, make_dataset


def main(output: str, count: int = 100, style: PageStyle = PageStyle(), seed: int = 0, prompt: str = DEFAULT_PROMPT) -> None:
    """Write `count` pages into OUTPUT/images and their annotations into OUTPUT/data.json.

    Args:
        output: Folder to write into.
        count: Number of pages.
        style: Page size, font size, script, layout and line breaks.
        seed: Same seed, same pages.
        prompt: Human turn of every record.
    """
    annotations = make_dataset(output, count, style, seed=seed, prompt=prompt)
    print(f"wrote {count} pages and {annotations}")


if __name__ == "__main__":
    CLI(main, as_positional=False)
