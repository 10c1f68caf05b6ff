"""The toxbench leaderboard: submissions built from complete results files, their schema, and the
pages generated from them (``toxbench leaderboard submit | validate | render``)."""
