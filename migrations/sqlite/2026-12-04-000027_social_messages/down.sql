DROP TABLE social_messages;
DROP TABLE social_handles;
