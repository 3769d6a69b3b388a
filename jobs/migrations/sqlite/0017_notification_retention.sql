-- The scheduler forgets notifications delivered long ago
-- (InboxStore::prune_notifications): by their delivery time, across users.
CREATE INDEX notifications_delivered ON notifications (deliver_at);
