"""Device side: meter keys, reading signing, Modbus polling, OCMF (see issue "Signed meter readings")."""
