"""device_farm: deploy converted models to devices (ADB phones, SSH boards, the
host), run edgert's benchmark protocol there, and keep every result.
"""
