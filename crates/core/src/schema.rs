//! The one schema for both backends. Ids, timestamps and JSON are `Text` (see `ids`).
//! Domain crates add their tables here so every crate can read (not write) the others'.

diesel::table! {
    teams (id) {
        id -> Text,
        name -> Text,
        description -> Nullable<Text>,
        version -> Integer,
        created_at -> Text,
        updated_at -> Text,
        archived_at -> Nullable<Text>,
    }
}

diesel::table! {
    users (id) {
        id -> Text,
        email -> Text,
        name -> Text,
        role -> Text,
        team_id -> Nullable<Text>,
        password_hash -> Nullable<Text>,
        active -> Bool,
        version -> Integer,
        created_at -> Text,
        updated_at -> Text,
        archived_at -> Nullable<Text>,
        session_epoch -> Integer,
    }
}

diesel::table! {
    refresh_tokens (id) {
        id -> Text,
        user_id -> Text,
        family_id -> Text,
        token_hash -> Text,
        expires_at -> Text,
        revoked_at -> Nullable<Text>,
        created_at -> Text,
    }
}

diesel::table! {
    api_keys (id) {
        id -> Text,
        user_id -> Text,
        name -> Text,
        prefix -> Text,
        key_hash -> Text,
        expires_at -> Nullable<Text>,
        last_used_at -> Nullable<Text>,
        revoked_at -> Nullable<Text>,
        created_at -> Text,
    }
}

diesel::table! {
    idempotency_keys (id) {
        id -> Text,
        scope -> Text,
        idem_key -> Text,
        request_hash -> Text,
        status_code -> Nullable<Integer>,
        response_body -> Nullable<Text>,
        response_headers -> Nullable<Text>,
        created_at -> Text,
        write_committed -> Bool,
    }
}

diesel::table! {
    audit_log (id) {
        id -> Text,
        occurred_at -> Text,
        actor_id -> Nullable<Text>,
        actor_kind -> Text,
        action -> Text,
        entity_type -> Text,
        entity_id -> Text,
        changes -> Text,
        request_id -> Nullable<Text>,
    }
}

diesel::table! {
    events (seq) {
        seq -> BigInt,
        id -> Text,
        event_type -> Text,
        entity_type -> Text,
        entity_id -> Text,
        actor_id -> Nullable<Text>,
        occurred_at -> Text,
        payload -> Text,
        tx -> BigInt,
    }
}

diesel::table! {
    record_tags (entity_type, tag, record_id) {
        entity_type -> Text,
        record_id -> Text,
        tag -> Text,
    }
}

diesel::table! {
    webhook_relay (id) {
        id -> Integer,
        tx -> BigInt,
        seq -> BigInt,
    }
}

diesel::table! {
    jobs (id) {
        id -> Text,
        kind -> Text,
        payload -> Text,
        status -> Text,
        attempts -> Integer,
        max_attempts -> Integer,
        run_at -> Text,
        locked_by -> Nullable<Text>,
        locked_until -> Nullable<Text>,
        last_error -> Nullable<Text>,
        created_at -> Text,
        updated_at -> Text,
        finished_at -> Nullable<Text>,
    }
}

diesel::table! {
    timeline_entries (id) {
        id -> Text,
        entity_type -> Text,
        entity_id -> Text,
        occurred_at -> Text,
        kind -> Text,
        summary -> Text,
        source_type -> Text,
        source_id -> Text,
        actor_id -> Nullable<Text>,
        data -> Text,
    }
}

diesel::table! {
    search_terms (entity_type, term, entity_id) {
        entity_type -> Text,
        entity_id -> Text,
        term -> Text,
    }
}

diesel::table! {
    accounts (id) {
        id -> Text,
        name -> Text,
        domain -> Nullable<Text>,
        industry -> Nullable<Text>,
        employee_count -> Nullable<BigInt>,
        annual_revenue -> Nullable<BigInt>,
        currency -> Nullable<Text>,
        billing_address -> Nullable<Text>,
        shipping_address -> Nullable<Text>,
        phone -> Nullable<Text>,
        website -> Nullable<Text>,
        owner_id -> Nullable<Text>,
        tags -> Text,
        parent_id -> Nullable<Text>,
        custom -> Text,
        external_source -> Nullable<Text>,
        external_id -> Nullable<Text>,
        merged_into -> Nullable<Text>,
        version -> Integer,
        created_at -> Text,
        updated_at -> Text,
        archived_at -> Nullable<Text>,
    }
}

diesel::table! {
    households (id) {
        id -> Text,
        name -> Text,
        address -> Nullable<Text>,
        version -> Integer,
        created_at -> Text,
        updated_at -> Text,
        archived_at -> Nullable<Text>,
    }
}

diesel::table! {
    contacts (id) {
        id -> Text,
        first_name -> Text,
        last_name -> Text,
        job_title -> Nullable<Text>,
        lifecycle_stage -> Text,
        owner_id -> Nullable<Text>,
        household_id -> Nullable<Text>,
        tags -> Text,
        preferred_language -> Nullable<Text>,
        social_profiles -> Text,
        custom -> Text,
        external_source -> Nullable<Text>,
        external_id -> Nullable<Text>,
        merged_into -> Nullable<Text>,
        erased_at -> Nullable<Text>,
        version -> Integer,
        created_at -> Text,
        updated_at -> Text,
        archived_at -> Nullable<Text>,
    }
}

diesel::table! {
    contact_emails (id) {
        id -> Text,
        contact_id -> Text,
        email -> Text,
        label -> Nullable<Text>,
        is_primary -> Bool,
    }
}

diesel::table! {
    contact_phones (id) {
        id -> Text,
        contact_id -> Text,
        number -> Text,
        e164 -> Text,
        label -> Nullable<Text>,
        is_primary -> Bool,
    }
}

diesel::table! {
    contact_accounts (contact_id, account_id) {
        contact_id -> Text,
        account_id -> Text,
        role -> Text,
    }
}

diesel::table! {
    contact_consents (contact_id, channel) {
        contact_id -> Text,
        channel -> Text,
        status -> Text,
        source -> Text,
        recorded_at -> Text,
    }
}

diesel::table! {
    activities (id) {
        id -> Text,
        kind -> Text,
        direction -> Nullable<Text>,
        channel -> Nullable<Text>,
        subject -> Text,
        body -> Nullable<Text>,
        starts_at -> Nullable<Text>,
        ends_at -> Nullable<Text>,
        due_at -> Nullable<Text>,
        due_sort -> Text,
        status -> Text,
        completed_at -> Nullable<Text>,
        assignee_id -> Nullable<Text>,
        owner_id -> Nullable<Text>,
        outcome -> Nullable<Text>,
        next_step -> Nullable<Text>,
        version -> Integer,
        created_at -> Text,
        updated_at -> Text,
        archived_at -> Nullable<Text>,
    }
}

diesel::table! {
    activity_links (activity_id, entity_type, entity_id) {
        activity_id -> Text,
        entity_type -> Text,
        entity_id -> Text,
    }
}

diesel::table! {
    products (id) {
        id -> Text,
        sku -> Text,
        name -> Text,
        description -> Nullable<Text>,
        family -> Nullable<Text>,
        active -> Bool,
        unit -> Text,
        warranty_months -> Nullable<Integer>,
        version -> Integer,
        created_at -> Text,
        updated_at -> Text,
        archived_at -> Nullable<Text>,
        external_source -> Nullable<Text>,
        external_id -> Nullable<Text>,
    }
}

diesel::table! {
    product_components (bundle_id, component_id) {
        bundle_id -> Text,
        component_id -> Text,
        quantity -> Integer,
    }
}

diesel::table! {
    price_books (id) {
        id -> Text,
        name -> Text,
        description -> Nullable<Text>,
        is_default -> Bool,
        active -> Bool,
        version -> Integer,
        created_at -> Text,
        updated_at -> Text,
        archived_at -> Nullable<Text>,
    }
}

diesel::table! {
    price_book_entries (price_book_id, product_id, currency) {
        price_book_id -> Text,
        product_id -> Text,
        currency -> Text,
        unit_price -> BigInt,
    }
}

diesel::table! {
    custom_field_defs (id) {
        id -> Text,
        object -> Text,
        key -> Text,
        label -> Text,
        field_type -> Text,
        required -> Bool,
        is_unique -> Bool,
        min_value -> Nullable<Double>,
        max_value -> Nullable<Double>,
        options -> Text,
        version -> Integer,
        created_at -> Text,
        updated_at -> Text,
        archived_at -> Nullable<Text>,
    }
}

diesel::table! {
    custom_values (object, record_id, key) {
        object -> Text,
        record_id -> Text,
        key -> Text,
        text_value -> Nullable<Text>,
        number_value -> Nullable<Double>,
    }
}

diesel::table! {
    invoices (id) {
        id -> Text,
        account_id -> Text,
        order_id -> Nullable<Text>,
        number -> Text,
        currency -> Text,
        amount_total -> BigInt,
        amount_paid -> BigInt,
        issued_on -> Text,
        due_on -> Text,
        status -> Text,
        notes -> Nullable<Text>,
        external_source -> Nullable<Text>,
        external_id -> Nullable<Text>,
        version -> Integer,
        created_at -> Text,
        updated_at -> Text,
        archived_at -> Nullable<Text>,
    }
}

diesel::table! {
    payments (id) {
        id -> Text,
        account_id -> Text,
        invoice_id -> Nullable<Text>,
        amount -> BigInt,
        currency -> Text,
        received_on -> Text,
        method -> Text,
        reference -> Nullable<Text>,
        external_source -> Nullable<Text>,
        external_id -> Nullable<Text>,
        version -> Integer,
        created_at -> Text,
        updated_at -> Text,
        archived_at -> Nullable<Text>,
    }
}

diesel::table! {
    leads (id) {
        id -> Text,
        first_name -> Nullable<Text>,
        last_name -> Nullable<Text>,
        company -> Nullable<Text>,
        job_title -> Nullable<Text>,
        email -> Nullable<Text>,
        phone -> Nullable<Text>,
        phone_e164 -> Nullable<Text>,
        country -> Nullable<Text>,
        industry -> Nullable<Text>,
        employee_count -> Nullable<BigInt>,
        source -> Text,
        campaign_id -> Nullable<Text>,
        status -> Text,
        disqualified_reason -> Nullable<Text>,
        score -> Integer,
        owner_id -> Nullable<Text>,
        converted_at -> Nullable<Text>,
        converted_account_id -> Nullable<Text>,
        converted_contact_id -> Nullable<Text>,
        converted_opportunity_id -> Nullable<Text>,
        external_source -> Nullable<Text>,
        external_id -> Nullable<Text>,
        version -> Integer,
        created_at -> Text,
        updated_at -> Text,
        archived_at -> Nullable<Text>,
        assignment_rule_id -> Nullable<Text>,
        assigned_at -> Nullable<Text>,
        recycled_at -> Nullable<Text>,
        recycle_reason -> Nullable<Text>,
        custom -> Text,
    }
}

diesel::table! {
    lead_assignment_rules (id) {
        id -> Text,
        name -> Text,
        position -> Integer,
        conditions -> Text,
        assign_to -> Text,
        user_id -> Nullable<Text>,
        team_id -> Nullable<Text>,
        territory_id -> Nullable<Text>,
        assigned_count -> Integer,
        active -> Bool,
        version -> Integer,
        created_at -> Text,
        updated_at -> Text,
        archived_at -> Nullable<Text>,
    }
}

diesel::table! {
    territories (id) {
        id -> Text,
        name -> Text,
        parent_id -> Nullable<Text>,
        owner_id -> Nullable<Text>,
        member_ids -> Text,
        rules -> Text,
        position -> Integer,
        version -> Integer,
        created_at -> Text,
        updated_at -> Text,
        archived_at -> Nullable<Text>,
    }
}

diesel::table! {
    account_territories (account_id) {
        account_id -> Text,
        territory_id -> Text,
        assigned_at -> Text,
    }
}

diesel::table! {
    territory_assignments (id) {
        id -> Text,
        account_id -> Text,
        territory_id -> Nullable<Text>,
        previous_territory_id -> Nullable<Text>,
        reason -> Text,
        assigned_at -> Text,
    }
}

diesel::table! {
    quotas (id) {
        id -> Text,
        user_id -> Text,
        period -> Text,
        currency -> Text,
        amount -> BigInt,
        version -> Integer,
        created_at -> Text,
        updated_at -> Text,
        archived_at -> Nullable<Text>,
    }
}

diesel::table! {
    commission_plans (id) {
        id -> Text,
        name -> Text,
        user_ids -> Text,
        tiers -> Text,
        family_rates -> Text,
        accelerator -> Nullable<Text>,
        version -> Integer,
        created_at -> Text,
        updated_at -> Text,
        archived_at -> Nullable<Text>,
    }
}

diesel::table! {
    sales_settings (name) {
        name -> Text,
        id -> Text,
        value -> Text,
        version -> Integer,
        updated_at -> Text,
    }
}

diesel::table! {
    pipelines (id) {
        id -> Text,
        name -> Text,
        stages -> Text,
        version -> Integer,
        created_at -> Text,
        updated_at -> Text,
        archived_at -> Nullable<Text>,
    }
}

diesel::table! {
    opportunities (id) {
        id -> Text,
        name -> Text,
        account_id -> Text,
        primary_contact_id -> Nullable<Text>,
        pipeline_id -> Text,
        stage -> Text,
        stage_entered_at -> Text,
        status -> Text,
        amount -> BigInt,
        currency -> Text,
        close_date -> Nullable<Text>,
        owner_id -> Nullable<Text>,
        partner_account_id -> Nullable<Text>,
        next_step -> Nullable<Text>,
        competitors -> Text,
        team -> Text,
        close_reason -> Nullable<Text>,
        closed_at -> Nullable<Text>,
        lead_id -> Nullable<Text>,
        external_source -> Nullable<Text>,
        external_id -> Nullable<Text>,
        version -> Integer,
        created_at -> Text,
        updated_at -> Text,
        archived_at -> Nullable<Text>,
        lines -> Text,
        price_book_id -> Nullable<Text>,
    }
}

diesel::table! {
    opportunity_stage_history (id) {
        id -> Text,
        opportunity_id -> Text,
        from_stage -> Nullable<Text>,
        to_stage -> Text,
        entered_at -> Text,
        seconds_in_from_stage -> Nullable<BigInt>,
        actor_id -> Nullable<Text>,
    }
}

diesel::table! {
    quotes (id) {
        id -> Text,
        opportunity_id -> Text,
        account_id -> Text,
        price_book_id -> Text,
        currency -> Text,
        status -> Text,
        valid_until -> Nullable<Text>,
        lines -> Text,
        subtotal -> BigInt,
        discount_total -> BigInt,
        tax_total -> BigInt,
        total -> BigInt,
        notes -> Nullable<Text>,
        order_id -> Nullable<Text>,
        sent_at -> Nullable<Text>,
        decided_at -> Nullable<Text>,
        external_source -> Nullable<Text>,
        external_id -> Nullable<Text>,
        version -> Integer,
        created_at -> Text,
        updated_at -> Text,
        archived_at -> Nullable<Text>,
        family_id -> Text,
        revision -> Integer,
        supersedes_id -> Nullable<Text>,
    }
}

diesel::table! {
    orders (id) {
        id -> Text,
        account_id -> Text,
        opportunity_id -> Nullable<Text>,
        quote_id -> Nullable<Text>,
        currency -> Text,
        ordered_on -> Text,
        status -> Text,
        lines -> Text,
        subtotal -> BigInt,
        discount_total -> BigInt,
        tax_total -> BigInt,
        total -> BigInt,
        notes -> Nullable<Text>,
        external_source -> Nullable<Text>,
        external_id -> Nullable<Text>,
        version -> Integer,
        created_at -> Text,
        updated_at -> Text,
        archived_at -> Nullable<Text>,
    }
}

diesel::joinable!(contact_emails -> contacts (contact_id));
diesel::joinable!(contact_phones -> contacts (contact_id));
diesel::joinable!(contact_accounts -> contacts (contact_id));
diesel::joinable!(contact_accounts -> accounts (account_id));
diesel::joinable!(contact_consents -> contacts (contact_id));
diesel::joinable!(activity_links -> activities (activity_id));
diesel::joinable!(contacts -> households (household_id));
diesel::joinable!(invoices -> accounts (account_id));
diesel::joinable!(payments -> accounts (account_id));
diesel::joinable!(payments -> invoices (invoice_id));
diesel::joinable!(opportunities -> pipelines (pipeline_id));
diesel::joinable!(opportunity_stage_history -> opportunities (opportunity_id));
diesel::joinable!(order_lines -> orders (order_id));
diesel::joinable!(lead_emails -> leads (lead_id));
diesel::joinable!(lead_phones -> leads (lead_id));

diesel::table! {
    lead_emails (lead_id, email) {
        lead_id -> Text,
        email -> Text,
        label -> Nullable<Text>,
        is_primary -> Bool,
    }
}

diesel::table! {
    lead_phones (lead_id, e164) {
        lead_id -> Text,
        number -> Text,
        e164 -> Text,
        label -> Nullable<Text>,
        is_primary -> Bool,
    }
}

diesel::table! {
    order_lines (order_id, line_no) {
        order_id -> Text,
        line_no -> Integer,
        account_id -> Text,
        product_id -> Text,
        quantity -> BigInt,
        net -> BigInt,
        currency -> Text,
        ordered_on -> Text,
    }
}

diesel::table! {
    schedules (name) {
        name -> Text,
        id -> Text,
        description -> Text,
        every_seconds -> Integer,
        enabled -> Bool,
        next_run_at -> Text,
        last_fired_at -> Nullable<Text>,
        last_job_id -> Nullable<Text>,
        fired_count -> Integer,
        version -> Integer,
        created_at -> Text,
        updated_at -> Text,
    }
}

diesel::joinable!(users -> teams (team_id));
diesel::joinable!(api_keys -> users (user_id));
// Service: platform mail, tickets, queues, routing, SLAs.

diesel::table! {
    mail_messages (id) {
        id -> Text,
        message_id -> Text,
        to_address -> Text,
        from_address -> Text,
        subject -> Text,
        body_text -> Text,
        in_reply_to -> Nullable<Text>,
        status -> Text,
        attempts -> Integer,
        last_error -> Nullable<Text>,
        template -> Text,
        entity_type -> Nullable<Text>,
        entity_id -> Nullable<Text>,
        created_at -> Text,
        sent_at -> Nullable<Text>,
        list_unsubscribe -> Nullable<Text>,
    }
}

diesel::table! {
    mail_templates (id) {
        id -> Text,
        key -> Text,
        subject -> Text,
        body_text -> Text,
        version -> Integer,
        created_at -> Text,
        updated_at -> Text,
        archived_at -> Nullable<Text>,
    }
}

diesel::table! {
    counters (name) {
        name -> Text,
        value -> BigInt,
    }
}

diesel::table! {
    business_calendars (id) {
        id -> Text,
        name -> Text,
        time_zone -> Text,
        weekly_hours -> Text,
        holidays -> Text,
        version -> Integer,
        created_at -> Text,
        updated_at -> Text,
        archived_at -> Nullable<Text>,
    }
}

diesel::table! {
    sla_policies (id) {
        id -> Text,
        name -> Text,
        calendar_id -> Text,
        customer_tier -> Nullable<Text>,
        targets -> Text,
        warn_before_minutes -> Integer,
        version -> Integer,
        created_at -> Text,
        updated_at -> Text,
        archived_at -> Nullable<Text>,
    }
}

diesel::table! {
    queues (id) {
        id -> Text,
        name -> Text,
        description -> Nullable<Text>,
        assignment -> Text,
        members -> Text,
        manager_id -> Nullable<Text>,
        last_assigned_id -> Nullable<Text>,
        version -> Integer,
        created_at -> Text,
        updated_at -> Text,
        archived_at -> Nullable<Text>,
    }
}

diesel::table! {
    routing_rules (id) {
        id -> Text,
        name -> Text,
        position -> Integer,
        conditions -> Text,
        queue_id -> Text,
        version -> Integer,
        created_at -> Text,
        updated_at -> Text,
        archived_at -> Nullable<Text>,
    }
}

diesel::table! {
    tickets (id) {
        id -> Text,
        number -> BigInt,
        subject -> Text,
        description -> Nullable<Text>,
        channel -> Text,
        contact_id -> Nullable<Text>,
        account_id -> Nullable<Text>,
        product_id -> Nullable<Text>,
        order_id -> Nullable<Text>,
        category -> Nullable<Text>,
        language -> Nullable<Text>,
        priority -> Text,
        priority_rank -> Integer,
        status -> Text,
        queue_id -> Nullable<Text>,
        assignee_id -> Nullable<Text>,
        tags -> Text,
        follow_up_of -> Nullable<Text>,
        sla_policy_id -> Nullable<Text>,
        first_response_due_at -> Nullable<Text>,
        next_response_due_at -> Nullable<Text>,
        resolution_due_at -> Nullable<Text>,
        first_responded_at -> Nullable<Text>,
        sla_paused_at -> Nullable<Text>,
        sla_state -> Text,
        solved_at -> Nullable<Text>,
        external_source -> Nullable<Text>,
        external_id -> Nullable<Text>,
        version -> Integer,
        created_at -> Text,
        updated_at -> Text,
        archived_at -> Nullable<Text>,
    }
}

diesel::table! {
    ticket_messages (id) {
        id -> Text,
        ticket_id -> Text,
        kind -> Text,
        author_id -> Nullable<Text>,
        from_address -> Nullable<Text>,
        body -> Text,
        message_id -> Nullable<Text>,
        created_at -> Text,
    }
}

diesel::table! {
    mail_gateways (id) {
        id -> Text,
        name -> Text,
        key_hash -> Text,
        key_prefix -> Text,
        default_queue_id -> Nullable<Text>,
        version -> Integer,
        created_at -> Text,
        updated_at -> Text,
        archived_at -> Nullable<Text>,
    }
}

diesel::joinable!(ticket_messages -> tickets (ticket_id));
diesel::joinable!(tickets -> contacts (contact_id));
diesel::joinable!(tickets -> accounts (account_id));
diesel::joinable!(tickets -> queues (queue_id));
diesel::joinable!(routing_rules -> queues (queue_id));
diesel::joinable!(sla_policies -> business_calendars (calendar_id));

// Service: knowledge base, surveys, field service.

diesel::table! {
    kb_articles (id) {
        id -> Text,
        title -> Text,
        body -> Text,
        category -> Nullable<Text>,
        language -> Text,
        status -> Text,
        revision -> Integer,
        helpful_votes -> Integer,
        unhelpful_votes -> Integer,
        published_at -> Nullable<Text>,
        author_id -> Nullable<Text>,
        version -> Integer,
        created_at -> Text,
        updated_at -> Text,
        archived_at -> Nullable<Text>,
    }
}

diesel::table! {
    kb_article_versions (article_id, revision) {
        article_id -> Text,
        revision -> Integer,
        title -> Text,
        body -> Text,
        author_id -> Nullable<Text>,
        created_at -> Text,
    }
}

diesel::table! {
    kb_votes (article_id, user_id) {
        article_id -> Text,
        user_id -> Text,
        helpful -> Bool,
        created_at -> Text,
    }
}

diesel::table! {
    ticket_articles (ticket_id, article_id) {
        ticket_id -> Text,
        article_id -> Text,
        linked_by -> Nullable<Text>,
        linked_at -> Text,
    }
}

diesel::table! {
    surveys (id) {
        id -> Text,
        ticket_id -> Text,
        contact_id -> Nullable<Text>,
        agent_id -> Nullable<Text>,
        queue_id -> Nullable<Text>,
        token_hash -> Text,
        expires_at -> Text,
        rating -> Nullable<Integer>,
        nps -> Nullable<Integer>,
        comment -> Nullable<Text>,
        answered_at -> Nullable<Text>,
        created_at -> Text,
    }
}

diesel::table! {
    work_orders (id) {
        id -> Text,
        number -> BigInt,
        ticket_id -> Nullable<Text>,
        account_id -> Nullable<Text>,
        contact_id -> Nullable<Text>,
        kind -> Text,
        site_address -> Nullable<Text>,
        technician_id -> Nullable<Text>,
        window_start -> Text,
        window_end -> Text,
        status -> Text,
        parts -> Text,
        notes -> Nullable<Text>,
        completed_at -> Nullable<Text>,
        version -> Integer,
        created_at -> Text,
        updated_at -> Text,
        archived_at -> Nullable<Text>,
    }
}

diesel::table! {
    warranty_claims (id) {
        id -> Text,
        order_id -> Text,
        product_id -> Text,
        ticket_id -> Nullable<Text>,
        account_id -> Nullable<Text>,
        description -> Nullable<Text>,
        status -> Text,
        reason -> Text,
        warranty_until -> Nullable<Text>,
        version -> Integer,
        created_at -> Text,
        updated_at -> Text,
        archived_at -> Nullable<Text>,
    }
}

diesel::joinable!(ticket_articles -> kb_articles (article_id));
diesel::joinable!(surveys -> tickets (ticket_id));

// Marketing: segments, lists, campaigns, suppressions.

diesel::table! {
    segments (id) {
        id -> Text,
        name -> Text,
        description -> Nullable<Text>,
        criteria -> Text,
        version -> Integer,
        created_at -> Text,
        updated_at -> Text,
        archived_at -> Nullable<Text>,
    }
}

diesel::table! {
    marketing_lists (id) {
        id -> Text,
        name -> Text,
        description -> Nullable<Text>,
        version -> Integer,
        created_at -> Text,
        updated_at -> Text,
        archived_at -> Nullable<Text>,
    }
}

diesel::table! {
    list_members (list_id, contact_id) {
        list_id -> Text,
        contact_id -> Text,
        added_at -> Text,
    }
}

diesel::table! {
    campaigns (id) {
        id -> Text,
        name -> Text,
        channel -> Text,
        status -> Text,
        parent_id -> Nullable<Text>,
        currency -> Text,
        budget -> BigInt,
        actual_cost -> BigInt,
        starts_on -> Nullable<Text>,
        ends_on -> Nullable<Text>,
        subject -> Nullable<Text>,
        body_text -> Nullable<Text>,
        send_started_at -> Nullable<Text>,
        owner_id -> Nullable<Text>,
        version -> Integer,
        created_at -> Text,
        updated_at -> Text,
        archived_at -> Nullable<Text>,
    }
}

diesel::table! {
    campaign_members (campaign_id, contact_id) {
        campaign_id -> Text,
        contact_id -> Text,
        status -> Text,
        skip_reason -> Nullable<Text>,
        mail_id -> Nullable<Text>,
        token_hash -> Nullable<Text>,
        lead_id -> Nullable<Text>,
        opportunity_id -> Nullable<Text>,
        added_at -> Text,
        sent_at -> Nullable<Text>,
        opened_at -> Nullable<Text>,
        clicked_at -> Nullable<Text>,
        responded_at -> Nullable<Text>,
        unsubscribed_at -> Nullable<Text>,
    }
}

diesel::table! {
    suppressions (email) {
        email -> Text,
        reason -> Text,
        campaign_id -> Nullable<Text>,
        created_at -> Text,
    }
}

diesel::table! {
    forms (id) {
        id -> Text,
        name -> Text,
        public_key -> Text,
        fields -> Text,
        consent_text -> Nullable<Text>,
        allowed_origins -> Text,
        campaign_id -> Nullable<Text>,
        owner_id -> Text,
        version -> Integer,
        created_at -> Text,
        updated_at -> Text,
        archived_at -> Nullable<Text>,
    }
}

diesel::table! {
    form_submissions (id) {
        id -> Text,
        form_id -> Text,
        data -> Text,
        lead_id -> Nullable<Text>,
        contact_id -> Nullable<Text>,
        consent_text -> Nullable<Text>,
        origin -> Nullable<Text>,
        created_at -> Text,
    }
}

diesel::table! {
    scoring_models (id) {
        id -> Text,
        name -> Text,
        applies_to -> Text,
        rules -> Text,
        half_life_days -> Nullable<Integer>,
        handoff_score -> Nullable<Integer>,
        owner_id -> Text,
        version -> Integer,
        created_at -> Text,
        updated_at -> Text,
        archived_at -> Nullable<Text>,
        nurture_below -> Nullable<Integer>,
    }
}

diesel::table! {
    contact_scores (contact_id) {
        contact_id -> Text,
        score -> Integer,
        updated_at -> Text,
    }
}

diesel::table! {
    score_changes (id) {
        id -> Text,
        model_id -> Text,
        entity_type -> Text,
        entity_id -> Text,
        old_score -> Integer,
        new_score -> Integer,
        reasons -> Text,
        created_at -> Text,
    }
}

diesel::table! {
    automations (id) {
        id -> Text,
        name -> Text,
        description -> Nullable<Text>,
        status -> Text,
        trigger_spec -> Text,
        steps -> Text,
        enrolment -> Text,
        exit_rules -> Text,
        owner_id -> Text,
        version -> Integer,
        created_at -> Text,
        updated_at -> Text,
        archived_at -> Nullable<Text>,
    }
}

diesel::table! {
    automation_runs (id) {
        id -> Text,
        automation_id -> Text,
        subject_type -> Text,
        subject_id -> Text,
        trigger_key -> Text,
        status -> Text,
        step -> Integer,
        wake_at -> Nullable<Text>,
        exit_reason -> Nullable<Text>,
        started_at -> Text,
        updated_at -> Text,
        finished_at -> Nullable<Text>,
    }
}

diesel::table! {
    automation_steps (id) {
        id -> Text,
        run_id -> Text,
        step -> Integer,
        action -> Text,
        outcome -> Text,
        detail -> Text,
        at -> Text,
    }
}

diesel::table! {
    automation_cursor (id) {
        id -> Integer,
        tx -> BigInt,
        seq -> BigInt,
    }
}

diesel::table! {
    touchpoints (id) {
        id -> Text,
        subject_type -> Text,
        subject_id -> Text,
        kind -> Text,
        campaign_id -> Nullable<Text>,
        source_type -> Text,
        source_id -> Text,
        summary -> Text,
        occurred_at -> Text,
        created_at -> Text,
    }
}

diesel::table! {
    loyalty_programs (id) {
        id -> Text,
        name -> Text,
        description -> Nullable<Text>,
        currency -> Text,
        earn_rules -> Text,
        tiers -> Text,
        rewards -> Text,
        version -> Integer,
        created_at -> Text,
        updated_at -> Text,
        archived_at -> Nullable<Text>,
    }
}

diesel::table! {
    loyalty_members (id) {
        id -> Text,
        program_id -> Text,
        contact_id -> Text,
        account_id -> Nullable<Text>,
        balance -> BigInt,
        lifetime_points -> BigInt,
        tier -> Nullable<Text>,
        version -> Integer,
        created_at -> Text,
        updated_at -> Text,
        archived_at -> Nullable<Text>,
    }
}

diesel::table! {
    loyalty_ledger (id) {
        id -> Text,
        member_id -> Text,
        kind -> Text,
        points -> BigInt,
        balance_after -> BigInt,
        source_key -> Text,
        order_id -> Nullable<Text>,
        reward_code -> Nullable<Text>,
        reason -> Nullable<Text>,
        actor_id -> Nullable<Text>,
        created_at -> Text,
    }
}

diesel::table! {
    social_handles (network, handle, contact_id) {
        network -> Text,
        handle -> Text,
        contact_id -> Text,
    }
}

diesel::table! {
    social_messages (id) {
        id -> Text,
        network -> Text,
        external_id -> Text,
        author_handle -> Text,
        author_name -> Nullable<Text>,
        body -> Text,
        url -> Nullable<Text>,
        sent_at -> Text,
        contact_id -> Nullable<Text>,
        matched_by -> Nullable<Text>,
        campaign_id -> Nullable<Text>,
        activity_id -> Nullable<Text>,
        ticket_id -> Nullable<Text>,
        version -> Integer,
        created_at -> Text,
        updated_at -> Text,
        archived_at -> Nullable<Text>,
    }
}

diesel::table! {
    sms_messages (id) {
        id -> Text,
        to_number -> Text,
        body -> Text,
        status -> Text,
        provider -> Nullable<Text>,
        provider_message_id -> Nullable<Text>,
        attempts -> Integer,
        last_error -> Nullable<Text>,
        entity_type -> Nullable<Text>,
        entity_id -> Nullable<Text>,
        created_at -> Text,
        sent_at -> Nullable<Text>,
    }
}

diesel::table! {
    sms_opt_outs (e164) {
        e164 -> Text,
        source -> Text,
        created_at -> Text,
    }
}

diesel::joinable!(list_members -> marketing_lists (list_id));
diesel::joinable!(campaign_members -> campaigns (campaign_id));
diesel::joinable!(list_members -> contacts (contact_id));
diesel::joinable!(campaign_members -> contacts (contact_id));

diesel::joinable!(refresh_tokens -> users (user_id));

diesel::allow_tables_to_appear_in_same_query!(
    teams,
    users,
    refresh_tokens,
    api_keys,
    idempotency_keys,
    audit_log,
    events,
    record_tags,
    webhook_relay,
    jobs,
    schedules,
    timeline_entries,
    search_terms,
    accounts,
    households,
    contacts,
    contact_emails,
    contact_phones,
    contact_accounts,
    contact_consents,
    activities,
    activity_links,
    products,
    product_components,
    price_books,
    price_book_entries,
    custom_field_defs,
    custom_values,
    invoices,
    payments,
    leads,
    lead_assignment_rules,
    territories,
    account_territories,
    territory_assignments,
    quotas,
    commission_plans,
    sales_settings,
    pipelines,
    opportunities,
    opportunity_stage_history,
    quotes,
    orders,
    order_lines,
    lead_emails,
    lead_phones,
    mail_messages,
    mail_templates,
    counters,
    business_calendars,
    sla_policies,
    queues,
    routing_rules,
    tickets,
    ticket_messages,
    mail_gateways,
    kb_articles,
    kb_article_versions,
    kb_votes,
    ticket_articles,
    surveys,
    work_orders,
    warranty_claims,
    segments,
    marketing_lists,
    list_members,
    campaigns,
    campaign_members,
    suppressions,
    forms,
    form_submissions,
    scoring_models,
    score_changes,
    contact_scores,
    automations,
    automation_runs,
    automation_steps,
    automation_cursor,
    touchpoints,
    loyalty_programs,
    loyalty_members,
    loyalty_ledger,
    social_handles,
    social_messages,
    sms_messages,
    sms_opt_outs,
);

// Integrations: feed retention, webhooks, imports.

diesel::table! {
    feed_state (id) {
        id -> Integer,
        pruned_through -> BigInt,
        pruned_tx -> BigInt,
    }
}

diesel::table! {
    webhooks (id) {
        id -> Text,
        url -> Text,
        description -> Nullable<Text>,
        event_types -> Text,
        filters -> Text,
        secret -> Text,
        active -> Bool,
        consecutive_failures -> Integer,
        disabled_at -> Nullable<Text>,
        disabled_reason -> Nullable<Text>,
        created_by -> Nullable<Text>,
        version -> Integer,
        created_at -> Text,
        updated_at -> Text,
        archived_at -> Nullable<Text>,
    }
}

diesel::table! {
    webhook_deliveries (id) {
        id -> Text,
        webhook_id -> Text,
        event_id -> Text,
        event_type -> Text,
        body -> Text,
        status -> Text,
        attempts -> Integer,
        last_status_code -> Nullable<Integer>,
        last_error -> Nullable<Text>,
        created_at -> Text,
        updated_at -> Text,
        delivered_at -> Nullable<Text>,
    }
}

diesel::table! {
    webhook_attempts (id) {
        id -> Text,
        delivery_id -> Text,
        attempted_at -> Text,
        status_code -> Nullable<Integer>,
        latency_ms -> BigInt,
        error -> Nullable<Text>,
    }
}

diesel::table! {
    imports (id) {
        id -> Text,
        object -> Text,
        format -> Text,
        mode -> Text,
        match_on -> Nullable<Text>,
        mapping -> Text,
        dry_run -> Bool,
        status -> Text,
        size_bytes -> BigInt,
        total_rows -> Nullable<BigInt>,
        processed -> BigInt,
        created -> BigInt,
        updated -> BigInt,
        failed -> BigInt,
        error -> Nullable<Text>,
        created_by -> Text,
        created_at -> Text,
        updated_at -> Text,
        finished_at -> Nullable<Text>,
    }
}

diesel::table! {
    import_chunks (import_id, n) {
        import_id -> Text,
        n -> Integer,
        data -> Binary,
    }
}

diesel::table! {
    import_errors (id) {
        id -> Text,
        import_id -> Text,
        line -> BigInt,
        field -> Nullable<Text>,
        message -> Text,
    }
}

diesel::joinable!(webhook_deliveries -> webhooks (webhook_id));
diesel::joinable!(webhook_attempts -> webhook_deliveries (delivery_id));
diesel::allow_tables_to_appear_in_same_query!(webhooks, webhook_deliveries, webhook_attempts);
