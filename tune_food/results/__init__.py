"""What a sweep's trials left, turned into its outputs: the leaderboard, the tables (CSV,
Parquet), the plots, TensorBoard and MLflow.
"""
