"""ampere.node"""
