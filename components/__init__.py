"""Pipeline steps: each module holds a plain, tested function and a thin KFP component over it."""
