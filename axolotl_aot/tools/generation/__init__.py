"""Judge a model by what it writes: ``aot-cli report --generate``.

Implicit-reward dominance on held-out pairs says how a checkpoint ranks given completions; it
says little of the completions the checkpoint itself writes (benchmarks/RESULTS.md, section 9).
This package samples K completions per prompt from each checkpoint and from its reference, scores
them with the user's reward model or function, and reports the reward distributions, the
dominance of the policy's rewards over the reference's, the win rate, and a sampled KL per token:

prompts: the prompts, rendered by the config's dataset type as training renders them
sampling: seeded batched sampling, and teacher-forced log-probs of the samples
rewards: a sequence-classification reward model, or a Python reward function
statistics: win rate, KL per token with its standard error, the summary of one checkpoint
judge: a run's reference sampled once, each checkpoint against it
"""

from axolotl_aot.tools.generation.judge import GenerationJudge, Generations, reference_view
from axolotl_aot.tools.generation.prompts import Prompt, load_prompts
from axolotl_aot.tools.generation.rewards import Reward, RewardFunction, RewardModel, load_reward
from axolotl_aot.tools.generation.sampling import Samples, SamplingSettings, completion_logps, sample
from axolotl_aot.tools.generation.statistics import GenerationStats, generation_stats, kl_per_token, win_rate

__all__ = [
    "GenerationJudge",
    "GenerationStats",
    "Generations",
    "Prompt",
    "Reward",
    "RewardFunction",
    "RewardModel",
    "Samples",
    "SamplingSettings",
    "completion_logps",
    "generation_stats",
    "kl_per_token",
    "load_prompts",
    "load_reward",
    "reference_view",
    "sample",
    "win_rate",
]
