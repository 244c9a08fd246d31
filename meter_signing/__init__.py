"""Device side: meter keys, reading signing, Modbus polling, OCMF.

Filled in by the issue "Signed meter readings".
"""
