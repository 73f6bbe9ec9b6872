-- The writes a store speaking Supabase's REST API (opencode/storage/supabase_rest.py) cannot
-- make atomic in one PostgREST statement: each copies the owner (user_id) from the session and
-- writes a row that depends on it, in one transaction, and says whether the session exists.
-- The asyncpg store does the same with `insert ... select ... from public.sessions`.
--
-- Never edit this file once it has shipped: add a new migration.

-- Replace a session's todo list. False (and nothing written) if the session does not exist.
create function public.set_todos(p_session_id text, p_todos jsonb) returns boolean
language plpgsql security definer set search_path = ''
as $$
begin
    insert into public.todos (session_id, user_id, todos)
    select s.id, s.user_id, p_todos from public.sessions s where s.id = p_session_id
    on conflict (session_id) do update set todos = excluded.todos;
    return found;
exception when foreign_key_violation then  -- the session was deleted meanwhile
    return false;
end;
$$;

-- Insert a question into a session. False (and nothing written) if the session does not exist.
create function public.add_question(
    p_id text,
    p_session_id text,
    p_message_id text,
    p_call_id text,
    p_questions jsonb,
    p_answers jsonb,
    p_status text,
    p_created_at timestamptz
) returns boolean
language plpgsql security definer set search_path = ''
as $$
begin
    insert into public.questions (
        id, session_id, user_id, message_id, call_id, questions, answers, status, created_at
    )
    select p_id, s.id, s.user_id, p_message_id, p_call_id, p_questions, p_answers, p_status,
           p_created_at
      from public.sessions s where s.id = p_session_id;
    return found;
exception when foreign_key_violation then
    return false;
end;
$$;

-- Insert or replace a session's compaction state. False (and nothing written) if the session
-- does not exist.
create function public.save_compaction(
    p_session_id text,
    p_status text,
    p_trigger text,
    p_started_at timestamptz,
    p_finished_at timestamptz,
    p_messages_folded bigint,
    p_tokens_before bigint,
    p_tokens_after bigint,
    p_error text,
    p_summary_message_id text,
    p_folded_through_seq bigint,
    p_compactions bigint
) returns boolean
language plpgsql security definer set search_path = ''
as $$
begin
    insert into public.compactions (
        session_id, user_id, status, trigger, started_at, finished_at, messages_folded,
        tokens_before, tokens_after, error, summary_message_id, folded_through_seq, compactions
    )
    select s.id, s.user_id, p_status, p_trigger, p_started_at, p_finished_at,
           p_messages_folded, p_tokens_before, p_tokens_after, p_error, p_summary_message_id,
           p_folded_through_seq, p_compactions
      from public.sessions s where s.id = p_session_id
    on conflict (session_id) do update
       set status = excluded.status,
           trigger = excluded.trigger,
           started_at = excluded.started_at,
           finished_at = excluded.finished_at,
           messages_folded = excluded.messages_folded,
           tokens_before = excluded.tokens_before,
           tokens_after = excluded.tokens_after,
           error = excluded.error,
           summary_message_id = excluded.summary_message_id,
           folded_through_seq = excluded.folded_through_seq,
           compactions = excluded.compactions;
    return found;
exception when foreign_key_violation then
    return false;
end;
$$;

-- The REST store calls this at startup: a missing function means this file was not applied.
create function public.opencode_rest_schema() returns integer
language sql stable security definer set search_path = ''
as $$ select 1 $$;

revoke execute on function
    public.set_todos(text, jsonb),
    public.add_question(text, text, text, text, jsonb, jsonb, text, timestamptz),
    public.save_compaction(
        text, text, text, timestamptz, timestamptz, bigint, bigint, bigint, text, text, bigint,
        bigint
    ),
    public.opencode_rest_schema()
    from public, anon, authenticated;
grant execute on function
    public.set_todos(text, jsonb),
    public.add_question(text, text, text, text, jsonb, jsonb, text, timestamptz),
    public.save_compaction(
        text, text, text, timestamptz, timestamptz, bigint, bigint, bigint, text, text, bigint,
        bigint
    ),
    public.opencode_rest_schema()
    to service_role;
