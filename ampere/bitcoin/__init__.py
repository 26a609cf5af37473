"""ampere.bitcoin"""
