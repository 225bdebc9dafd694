"""PyTorch DistributedDataParallel (gloo, loopback) counterpart of Ember's
`train_gpt --distributed`: the same nanoGPT (bench/torch_bench.py's NanoGpt), the same AdamW
groups and clipping, one thread per rank; prints one JSON line from rank 0:
{"tokens_per_s": ..., "step_ms": [...]} (tokens of all ranks per second, median step).

    python bench/ddp/torch_ddp.py --world 2 --n-layer 4 --n-head 4 --n-embd 128 --block 128 \
        --batch 32 --vocab 65 --warmup 3 --steps 10
"""
import argparse
import json
import os
import socket
import statistics
import sys
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from torch_bench import NanoGpt  # noqa: E402


def worker(rank, args, port):
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=args.world)
    torch.manual_seed(0)
    model = NanoGpt(args.vocab, args.block, args.n_layer, args.n_head, args.n_embd)
    ddp = DistributedDataParallel(model)  # 25 MiB buckets, overlapped with the backward
    decay = [p for p in model.parameters() if p.dim() >= 2]
    other = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                             {"params": other, "weight_decay": 0.0}], lr=2e-3, betas=(0.9, 0.99))
    g = torch.Generator().manual_seed(rank)
    times = []
    for i in range(args.warmup + args.steps):
        x = torch.randint(args.vocab, (args.batch, args.block), generator=g)
        y = torch.randint(args.vocab, (args.batch, args.block), generator=g)
        t0 = time.perf_counter()
        loss = ddp(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        dt = time.perf_counter() - t0
        if i >= args.warmup:
            times.append(dt)
    if rank == 0:
        step = statistics.median(times)
        tokens = args.world * args.batch * args.block
        print(json.dumps({"tokens_per_s": tokens / step, "step_ms": [t * 1e3 for t in times],
                          "torch": torch.__version__}), flush=True)
    dist.destroy_process_group()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    p = argparse.ArgumentParser()
    for name, default in [("world", 2), ("n-layer", 4), ("n-head", 4), ("n-embd", 128),
                          ("block", 128), ("batch", 32), ("vocab", 65), ("warmup", 3),
                          ("steps", 10)]:
        p.add_argument(f"--{name}", type=int, default=default)
    args = p.parse_args()
    mp.spawn(worker, args=(args, free_port()), nprocs=args.world, join=True)


if __name__ == "__main__":
    main()
