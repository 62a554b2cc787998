"""Recipe: choose among your own NNX CNNs on CIFAR-10 from TensorFlow Datasets, without TensorFlow.

Prepare CIFAR-10 once, on a machine with network, as array_record files::

    tfds build cifar10 --data_dir ~/tensorflow_datasets --file_format array_record

Then, with no network::

    python examples/tfds_cifar10.py --data-dir ~/tensorflow_datasets --max-examples 10000

capjax reads the prepared files through ``tfds.data_source`` (NumPy, no TensorFlow). A
missing dataset fails at once, naming the directory and the command that prepares it.
The candidates are the three families of ``own_models.py`` on 3-channel images.
"""

from __future__ import annotations

import argparse
import runpy
from pathlib import Path

import capjax


def main(argv: list[str] | None = None) -> capjax.Selection:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="cifar10", help="the tfds dataset (default: cifar10)")
    parser.add_argument("--data-dir", default=None, help="tfds data directory (default: tfds's own)")
    parser.add_argument("--max-examples", type=int, default=None, help="cap each stored split (default: all)")
    parser.add_argument("--width", type=int, default=32, help="channels of each family's first block")
    parser.add_argument("--full-epochs", type=int, default=30)
    parser.add_argument("--budget", default="20%")
    parser.add_argument("--out", default="results", help="where the run folder goes")
    args = parser.parse_args(argv)
    data = capjax.load_dataset(f"tfds:{args.name}", data_dir=args.data_dir, max_examples=args.max_examples)
    build = runpy.run_path(str(Path(__file__).with_name("own_models.py")))["build"]
    selection = capjax.select(build(args.width, channels=data.input_shape[-1]), data, budget=args.budget,
                              full_epochs=args.full_epochs, out=args.out, progress=False)
    print(f"chosen {selection.chosen} at {selection.compute_fraction:.1%} of the compute of training all "
          f"{len(selection.ranking)} for {args.full_epochs} epochs")
    return selection


if __name__ == "__main__":
    main()
