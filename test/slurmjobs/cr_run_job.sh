#!/bin/bash
# The job script of docs/SLURM.md, as the tests submit it: the program and
# its arguments are the script's, CR_RUN (the cr_run the test built) and
# CHECKPOINT_DIR come from the environment (sbatch --export), and
# CR_RUN_OPTIONS, if set, are more options of cr_run.
#SBATCH --requeue
#SBATCH --signal=B:USR1@60
#SBATCH --open-mode=append
exec "$CR_RUN" --slurm -D "$CHECKPOINT_DIR" $CR_RUN_OPTIONS -- "$@"
