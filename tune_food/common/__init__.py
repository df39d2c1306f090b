"""The ground floor: exceptions, file helpers, progress lines, the environment check, what
every CLI shares, and the statistics. Imports nothing else of tune_food.
"""
