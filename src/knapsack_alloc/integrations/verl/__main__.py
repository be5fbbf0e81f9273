"""``python -m knapsack_alloc.integrations.verl <hydra overrides>``: see :mod:`.launch`."""

from knapsack_alloc.integrations.verl.launch import main

if __name__ == "__main__":
    main()
