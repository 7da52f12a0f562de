"""The analytics path: daily rollups per machine for Athena and QuickSight."""
