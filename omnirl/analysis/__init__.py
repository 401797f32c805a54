"""Reading results back and drawing them: run directories, offline and online W&B runs, loss
curves, t-SNE of memory states, task galleries. The notebooks (``notebooks/``) read logged results
only through these functions.

* ``omnirl.analysis.runs``: ``read_summary``, ``find_runs``, ``read_training_run`` /
  ``training_runs`` (``TrainingRun``), ``read_evaluation`` / ``evaluations`` (``Evaluation``),
  ``read_memory`` / ``collect_memory`` (``MemoryStates``), ``history_from_wandb``;
* ``omnirl.analysis.curves``: loss against position and against training iteration;
* ``omnirl.analysis.tsne``: ``memory_embedding`` and ``plot_embedding`` (needs scikit-learn, the
  ``notebooks`` extra);
* ``omnirl.analysis.gallery``: kernels, stationary distributions and oracle values of tasks;
* ``omnirl.analysis.wandb_offline``: the offline W&B log reader.

The submodules are imported on use (``from omnirl.analysis.curves import ...``), so reading runs
needs neither scikit-learn nor W&B.
"""
