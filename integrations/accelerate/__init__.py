"""augshift.integrations.accelerate"""
