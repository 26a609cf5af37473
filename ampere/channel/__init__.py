"""ampere.channel"""
