-- Access tokens carry the user's session epoch; ending the user's sessions (password,
-- role or status change) bumps it, so tokens issued before stop working at once.
ALTER TABLE users ADD COLUMN session_epoch INTEGER NOT NULL DEFAULT 0;
