"""augshift.integrations.timm"""
