"""The training phase: LoRA / QLoRA / full fine-tuning with transformers' Trainer and peft.

One job per module, each importable without torch (heavy imports live inside the functions):

- ``settings``: hyperparameters resolved from ``engagement.yaml`` (method defaults, sequence length from the
  data audit), the step plan, and the fingerprint that decides whether a checkpoint may be resumed;
- ``dataset``: splits -> token ids with assistant-only labels (via ``ftkit.chat_format``) and the label checks;
- ``packing``: padding-free packing (one attention window per example) or length-grouped padded batches;
- ``memory``: the memory estimate and the refusal with a suggested setting;
- ``resume``: finding a checkpoint of an interrupted run to continue from;
- ``trainer``: the model, the peft method and the transformers ``Trainer`` with ftkit's callbacks;
- ``launch`` / ``worker``: ``accelerate launch`` for more than one process (DDP), progress streamed back;
- ``summary``: loss history, overfitting flag, figures, findings and the training summary.
"""
