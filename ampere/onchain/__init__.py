"""ampere.onchain"""
