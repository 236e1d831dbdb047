"""The entry point of one training process under torchrun (DDP): `python -m torch.distributed.run
--nproc_per_node N -m videobert.training.worker --request request.json --params params.yaml`.

Every process runs `train`; the main process (rank 0) alone records the run, its checkpoints and metrics, and
writes the result to `--result`.
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import asdict

from videobert.core.params import load_params
from videobert.core.runtime import get_runtime
from videobert.training.run import TrainRequest, is_main_process, train


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--request", required=True, help="a JSON file holding a TrainRequest's fields")
    parser.add_argument("--params", default=None, help="params.yaml (the paper's defaults when absent)")
    parser.add_argument("--result", default=None, help="where the main process writes the result as JSON")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if is_main_process() else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with open(args.request) as f:
        request = TrainRequest(**json.load(f))
    result = train(get_runtime(), load_params(args.params), request)
    if is_main_process() and args.result:
        with open(args.result, "w") as f:
            json.dump(asdict(result), f, indent=1, default=str)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
