-- The token a refresh token was exchanged for, sealed with the old token (see `secrets::seal`):
-- a request that presents the old token within the grace window gets the same successor.
ALTER TABLE refresh_tokens ADD COLUMN successor_seal BLOB;
