"""Transfer evaluations: behaviours the calibration training never targeted (open-ended random
generation, MCQ answer-position balance, NoveltyBench)."""
