"""The command line: each command a thin module (click options -> the library -> an exit code).
Exit codes: 0 all done, 1 some file failed, 2 usage error, 130 interrupted. Nothing outside
this package imports click or spells a flag (the library names options by their request fields;
:data:`enhancer.cli.common.FLAGS` spells them)."""
from __future__ import annotations

import click

from enhancer import __version__
from enhancer.cli import conform, enhance, media, models, quality, train, watch
from enhancer.cli.common import CONTEXT, start


@click.group(context_settings=CONTEXT)
@click.version_option(__version__, prog_name="enhancer")
def main() -> None:
    """Repair and upscale video with a conditional spatio-temporal GAN."""
    start(verbose=False)  # -v raises the log to INFO


main.add_command(enhance.enhance, "enhance")
main.add_command(watch.command())
main.add_command(conform.command())
for command in (media.degrade_cmd, train.prepare_cmd, train.train_cmd, train.export_cmd, train.calibrate_cmd,
                quality.evaluate_cmd, quality.benchmark_cmd, media.compare_cmd, models.models_cmd, media.probe_cmd,
                quality.study_cmd):
    main.add_command(command)

if __name__ == "__main__":
    main()
