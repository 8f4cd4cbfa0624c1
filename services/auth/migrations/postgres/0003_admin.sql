-- A lock an admin set, unlike a lockout after failed sign-ins, also stops the user's live
-- credentials (API keys included) and survives a password reset.
ALTER TABLE users ADD COLUMN locked_by_admin BOOLEAN NOT NULL DEFAULT FALSE;

-- Role names are unique regardless of case, as users name them.
CREATE UNIQUE INDEX roles_name_lower ON roles (lower(name));
CREATE INDEX user_roles_role ON user_roles (role);
CREATE INDEX users_created ON users (created_at, id);
