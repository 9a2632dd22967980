"""Two nodes on one machine: a job with `--nodes=2` on the local two-node SLURM cluster
(two slurmd), one task per node, each rank taking its rendezvous from
`schedenv.rendezvous()` (the job's node list, expanded; the first host's address) and
meeting the other in a real torch.distributed all-reduce through torchrun."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO
from tests.slurm_cluster import SlurmCluster

ALL_REDUCE = """
import json, os, sys, torch, torch.distributed as dist
dist.init_process_group("gloo")
value = torch.tensor([float(dist.get_rank() + 1)])
dist.all_reduce(value)
out = {"rank": dist.get_rank(), "world": dist.get_world_size(), "sum": value.item(),
       "node": os.environ["SLURMD_NODENAME"], "master": os.environ["MASTER_ADDR"]}
open(os.path.join(sys.argv[1], f"rank-{dist.get_rank()}.json"), "w").write(json.dumps(out))
dist.destroy_process_group()
"""

# Each task: rendezvous() as the train stage calls it, then torchrun with what it gave.
TASK = """
eval "$({python} -c 'from apps_hpc.core.schedenv import rendezvous
for k, v in rendezvous().items(): print(f"export {{k}}={{v}}")')"
exec {torchrun} --nnodes="$NNODES" --node_rank="$NODE_RANK" --nproc_per_node=1 \\
    --master_addr="$MASTER_ADDR" --master_port="$MASTER_PORT" {script} {out}
"""


def _job(tmp_path: Path) -> Path:
    script = tmp_path / "all_reduce.py"
    script.write_text(ALL_REDUCE)
    torchrun = Path(sys.executable).with_name("torchrun")
    task = tmp_path / "task.sh"
    task.write_text(
        TASK.format(python=sys.executable, torchrun=torchrun, script=script, out=tmp_path)
    )
    job = tmp_path / "job.sbatch"
    job.write_text(
        "#!/bin/bash\n"
        f"#SBATCH --nodes=2 --ntasks-per-node=1 --cpus-per-task=1 --output={tmp_path}/job.out\n"
        f"#SBATCH --chdir={REPO}\n"
        f"srun bash {task}\n"
    )
    return job


@pytest.mark.skipif(shutil.which("sbatch") is None, reason="no SLURM client")
def test_a_two_node_job_meets_on_the_first_host(
    two_node_cluster: SlurmCluster, tmp_path: Path
) -> None:
    done = subprocess.run(
        ["sbatch", "--wait", str(_job(tmp_path))],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    log = (tmp_path / "job.out").read_text() if (tmp_path / "job.out").exists() else ""
    assert done.returncode == 0, done.stdout + done.stderr + log
    ranks = [json.loads((tmp_path / f"rank-{r}.json").read_text()) for r in (0, 1)]
    assert [r["world"] for r in ranks] == [2, 2] and [r["sum"] for r in ranks] == [3.0, 3.0]
    assert len({r["node"] for r in ranks}) == 2  # one task on each SLURM node
    assert {r["master"] for r in ranks} == {"127.0.0.1"}  # <host>-n1 resolved via its NodeAddr
