"""The evaluation phase: is the fine-tuned model better than the baseline, significantly, and is it a go?

One job per module, all light to import (numpy at most; torch, transformers and peft only inside the
functions that load models or generate):

- ``reproduce``: the baseline's exact test examples, prompts and generation settings, verified by hash;
- ``finetuned``: load a training run's adapter or full model with the tokenizer it will be served with;
- ``paired``: per-example win/loss/tie, paired bootstrap CIs and p-values, McNemar's test, regressions;
- ``stops``: runaway generations, serving stop ids and the chat-template round trip;
- ``forgetting``: the general-purpose probe set scored before and after fine-tuning;
- ``health``: validation-loss trend and the overfitting flag of the training run;
- ``iterations``: earlier training runs (iterations) to compare the newest model with;
- ``ab_sheet`` + ``agreement``: blind A/B rating sheets, the import of filled ones, win rate, Cohen's kappa;
- ``judge``: optional LLM-as-judge through an OpenAI-compatible endpoint, its prompt recorded;
- ``verdict``: acceptance criteria one by one, overall go/no-go and what to do next;
- ``report``: the tables, figure, findings and client wording built from the numbers.
"""
