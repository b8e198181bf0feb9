"""Commands that fit or calibrate what ships (readings' tables and knots). Restoring never imports them."""
