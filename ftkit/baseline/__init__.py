"""The baseline phase: what fine-tuning must beat (``phase``) and the choice among candidate base models
(``selection``). Kept out of ``ftkit.models`` because it uses generation and metrics, a floor above models."""
