"""`python -m cft.training`: train one adapter as the `train_adapter` rule does, from the command
line. This is the program that `torchrun` / `accelerate launch` start once per GPU (cft.launch);
run alone it trains in one process."""

from __future__ import annotations

import argparse
import json
import logging

from cft.training.distributed import destroy_process_group, init_process_group
from cft.training.trainer import train_from_workflow


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m cft.training", description=__doc__)
    parser.add_argument("--model-record", required=True, help="results/models/<model>.json")
    parser.add_argument("--prompts", required=True, help="the training prompts (JSONL)")
    parser.add_argument("--settings", required=True, help="flat training settings as JSON")
    parser.add_argument("--checkpoint-dir", required=True)
    parser.add_argument("--adapter-dir", required=True)
    parser.add_argument("--log-csv", required=True)
    parser.add_argument("--record", required=True)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--snapshots-dir", default=None, help="where the adapter snapshots of the fidelity curve go")
    parser.add_argument("--tensorboard-dir", default=None, help="TensorBoard event files (default: none)")
    parser.add_argument("--device", default=None, help="default: this process's GPU, else CUDA if present, else CPU")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    device = init_process_group() or args.device
    try:
        train_from_workflow(model_record=args.model_record, prompts_path=args.prompts,
                            settings=json.loads(args.settings), checkpoint_dir=args.checkpoint_dir,
                            adapter_dir=args.adapter_dir, log_csv=args.log_csv, record_path=args.record,
                            threads=args.threads, device=device, snapshots_dir=args.snapshots_dir,
                            tensorboard_dir=args.tensorboard_dir)
    finally:
        destroy_process_group()


if __name__ == "__main__":
    main()
