"""The bottom floor: imports nothing of ours and never KFP, KServe or Evidently."""
