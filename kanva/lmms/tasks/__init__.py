"""lmms-eval's plugin layout also reads `<plugin>.tasks` for task YAMLs; Kanva adds no tasks (use lmms-eval's)."""
