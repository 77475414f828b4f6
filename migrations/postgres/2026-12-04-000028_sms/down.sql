DROP TABLE sms_opt_outs;
DROP TABLE sms_messages;
