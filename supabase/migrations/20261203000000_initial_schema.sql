-- The OpenCode API schema: sessions and what they own (messages, per-model usage, todos,
-- questions, compaction state). The same tables and semantics as the SQLite store
-- (opencode/storage/migrations.py); the PostgreSQL store applies this file at startup and the
-- Supabase CLI can push it (`supabase db push`).
--
-- Every table carries a nullable `user_id` (the owner, `auth.users.id`; no foreign key, so a
-- fixed local user also fits) with Row Level Security owner policies. The server connects as the
-- database owner or service_role; `authenticated` users may read their own rows and manage
-- their own sessions' title and model, but the counters, seq and usage are the store's: they
-- change only through the functions at the end, which only service_role may call.
--
-- Never edit this file once it has shipped: add a new migration.

create table public.sessions (
    id text collate "C" primary key,
    user_id uuid,
    title text not null,
    model text,
    created_at timestamptz not null,
    updated_at timestamptz not null,
    message_count bigint not null default 0,
    total_cost double precision not null default 0,
    input_tokens bigint not null default 0,
    output_tokens bigint not null default 0,
    reasoning_tokens bigint not null default 0,
    cache_read_tokens bigint not null default 0,
    cache_write_tokens bigint not null default 0
);
-- Pages of sessions, newest first: all of them, and one user's.
create index sessions_by_recency on public.sessions (updated_at desc, id desc);
create index sessions_by_user_recency on public.sessions (user_id, updated_at desc, id desc);

create table public.messages (
    id text collate "C" primary key,
    session_id text collate "C" not null references public.sessions (id) on delete cascade,
    user_id uuid,  -- the session's, copied by add_message so RLS needs no join
    seq bigint not null,  -- 1, 2, 3, ... per session: the session's message_count at insert
    role text not null,
    status text not null,
    parent_id text,
    model text,
    content text not null default '',
    parts jsonb not null default '[]' check (jsonb_typeof(parts) = 'array'),
    usage jsonb not null default '{}' check (jsonb_typeof(usage) = 'object'),
    cost double precision not null default 0,
    error text,
    created_at timestamptz not null,
    updated_at timestamptz not null,
    -- Pages are seq ranges on this index; unique also guards the dense seq invariant.
    constraint messages_by_seq unique (session_id, seq)
);
-- Crash recovery only touches running messages, so it need not scan the table.
create index messages_running on public.messages (session_id, seq) where status = 'running';
create index messages_by_user on public.messages (user_id);

create table public.model_usage (
    session_id text collate "C" not null references public.sessions (id) on delete cascade,
    model text not null,
    user_id uuid,
    first_use bigint generated always as identity,  -- rows list in the order models were first used
    cost double precision not null default 0,
    steps bigint not null default 0,
    input_tokens bigint not null default 0,
    output_tokens bigint not null default 0,
    reasoning_tokens bigint not null default 0,
    cache_read_tokens bigint not null default 0,
    cache_write_tokens bigint not null default 0,
    primary key (session_id, model)
);
create index model_usage_by_user on public.model_usage (user_id);

create table public.todos (
    session_id text collate "C" primary key references public.sessions (id) on delete cascade,
    user_id uuid,
    todos jsonb not null check (jsonb_typeof(todos) = 'array')
);
create index todos_by_user on public.todos (user_id);

create table public.questions (
    id text collate "C" primary key,
    session_id text collate "C" not null references public.sessions (id) on delete cascade,
    user_id uuid,
    message_id text not null,
    call_id text not null,
    questions jsonb not null check (jsonb_typeof(questions) = 'array'),
    answers jsonb check (answers is null or jsonb_typeof(answers) = 'array'),
    status text not null,
    created_at timestamptz not null
);
create index questions_by_session on public.questions (session_id, created_at, id);
create index questions_pending on public.questions (created_at, id) where status = 'pending';
create index questions_by_user on public.questions (user_id);

create table public.compactions (
    session_id text collate "C" primary key references public.sessions (id) on delete cascade,
    user_id uuid,
    status text not null,
    trigger text not null,
    started_at timestamptz not null,
    finished_at timestamptz,
    messages_folded bigint not null default 0,
    tokens_before bigint not null default 0,
    tokens_after bigint not null default 0,
    error text,
    summary_message_id text,
    folded_through_seq bigint not null default 0,
    compactions bigint not null default 0
);
create index compactions_running on public.compactions (session_id) where status = 'running';
create index compactions_by_user on public.compactions (user_id);

-- Grants. New Supabase projects expose no table that is not granted explicitly; older ones
-- grant everything to anon and authenticated by default, hence the revokes. anon gets nothing.
revoke all on table public.sessions, public.messages, public.model_usage, public.todos,
    public.questions, public.compactions from anon, authenticated;
grant select, insert, update, delete on table public.sessions, public.messages,
    public.model_usage, public.todos, public.questions, public.compactions to service_role;
grant select, delete on table public.sessions to authenticated;
grant insert (id, user_id, title, model, created_at, updated_at) on table public.sessions
    to authenticated;
grant update (title, model, updated_at) on table public.sessions to authenticated;
grant select on table public.messages, public.model_usage, public.todos, public.questions,
    public.compactions to authenticated;

-- Row Level Security: a user sees and changes only rows whose user_id is theirs. auth.uid()
-- is wrapped in a select so it is evaluated once per statement, not once per row.
alter table public.sessions enable row level security;
alter table public.messages enable row level security;
alter table public.model_usage enable row level security;
alter table public.todos enable row level security;
alter table public.questions enable row level security;
alter table public.compactions enable row level security;

create policy "owners read their sessions" on public.sessions
    for select to authenticated using ((select auth.uid()) = user_id);
create policy "owners create their sessions" on public.sessions
    for insert to authenticated with check ((select auth.uid()) = user_id);
create policy "owners update their sessions" on public.sessions
    for update to authenticated
    using ((select auth.uid()) = user_id) with check ((select auth.uid()) = user_id);
create policy "owners delete their sessions" on public.sessions
    for delete to authenticated using ((select auth.uid()) = user_id);
create policy "owners read their messages" on public.messages
    for select to authenticated using ((select auth.uid()) = user_id);
create policy "owners read their model usage" on public.model_usage
    for select to authenticated using ((select auth.uid()) = user_id);
create policy "owners read their todos" on public.todos
    for select to authenticated using ((select auth.uid()) = user_id);
create policy "owners read their questions" on public.questions
    for select to authenticated using ((select auth.uid()) = user_id);
create policy "owners read their compactions" on public.compactions
    for select to authenticated using ((select auth.uid()) = user_id);

-- The atomic multi-step writes, one implementation each: the asyncpg store calls them, and a
-- Supabase REST store can call them with rpc(). p_now is the caller's clock, as for every other
-- timestamp the store writes.

-- The parts after a PartsPatch, exactly as opencode.storage.base.apply_patch: append
-- p_append_text to the text of part p_keep - 1, drop the p_drop parts after the first p_keep,
-- then add p_tail.
create function public.apply_parts_patch(
    p_parts jsonb, p_keep integer, p_drop integer, p_append_text text, p_tail jsonb
) returns jsonb
language plpgsql immutable security definer set search_path = ''
as $$
declare
    v_parts jsonb := p_parts;
begin
    if p_append_text <> '' then
        v_parts := pg_catalog.jsonb_set(
            v_parts,
            array[(p_keep - 1)::text, 'text'],
            pg_catalog.to_jsonb((v_parts -> (p_keep - 1) ->> 'text') || p_append_text)
        );
    end if;
    if p_drop > 0 then
        select coalesce(pg_catalog.jsonb_agg(part order by idx), '[]'::jsonb)
          into v_parts
          from pg_catalog.jsonb_array_elements(v_parts) with ordinality as kept (part, idx)
         where idx <= p_keep or idx > p_keep + p_drop;
    end if;
    return v_parts || coalesce(p_tail, '[]'::jsonb);
end;
$$;

-- Add one model step's usage and cost to the session's totals and its per-model row.
-- False (and nothing written) if the session does not exist.
create function public.record_step_usage(
    p_session_id text, p_model text, p_usage jsonb, p_cost double precision
) returns boolean
language plpgsql security definer set search_path = ''
as $$
declare
    v_input bigint := coalesce((p_usage ->> 'input_tokens')::bigint, 0);
    v_output bigint := coalesce((p_usage ->> 'output_tokens')::bigint, 0);
    v_reasoning bigint := coalesce((p_usage ->> 'reasoning_tokens')::bigint, 0);
    v_cache_read bigint := coalesce((p_usage ->> 'cache_read_tokens')::bigint, 0);
    v_cache_write bigint := coalesce((p_usage ->> 'cache_write_tokens')::bigint, 0);
    v_user uuid;
begin
    -- The row lock taken here orders concurrent steps: totals are sums in the order they finish.
    update public.sessions
       set total_cost = total_cost + p_cost,
           input_tokens = input_tokens + v_input,
           output_tokens = output_tokens + v_output,
           reasoning_tokens = reasoning_tokens + v_reasoning,
           cache_read_tokens = cache_read_tokens + v_cache_read,
           cache_write_tokens = cache_write_tokens + v_cache_write
     where id = p_session_id
    returning user_id into v_user;
    if not found then
        return false;
    end if;
    insert into public.model_usage as mu (
        session_id, model, user_id, cost, steps, input_tokens, output_tokens,
        reasoning_tokens, cache_read_tokens, cache_write_tokens
    ) values (
        p_session_id, p_model, v_user, p_cost, 1, v_input, v_output,
        v_reasoning, v_cache_read, v_cache_write
    )
    on conflict (session_id, model) do update
       set cost = mu.cost + excluded.cost,
           steps = mu.steps + 1,
           input_tokens = mu.input_tokens + excluded.input_tokens,
           output_tokens = mu.output_tokens + excluded.output_tokens,
           reasoning_tokens = mu.reasoning_tokens + excluded.reasoning_tokens,
           cache_read_tokens = mu.cache_read_tokens + excluded.cache_read_tokens,
           cache_write_tokens = mu.cache_write_tokens + excluded.cache_write_tokens;
    return true;
end;
$$;

-- Insert a message as the session's next: seq = message_count + 1, bumping message_count and
-- updated_at in the same transaction. Returns the seq; null (and nothing written) if the
-- session does not exist.
create function public.add_message(
    p_id text,
    p_session_id text,
    p_role text,
    p_status text,
    p_parts jsonb,
    p_content text,
    p_parent_id text,
    p_model text,
    p_usage jsonb,
    p_cost double precision,
    p_error text,
    p_created_at timestamptz,
    p_updated_at timestamptz,
    p_now timestamptz
) returns bigint
language plpgsql security definer set search_path = ''
as $$
declare
    v_seq bigint;
    v_user uuid;
begin
    -- The row lock serialises concurrent adds to one session, so seq stays dense.
    update public.sessions
       set message_count = message_count + 1, updated_at = p_now
     where id = p_session_id
    returning message_count, user_id into v_seq, v_user;
    if not found then
        return null;
    end if;
    insert into public.messages (
        id, session_id, user_id, seq, role, status, parent_id, model, content, parts, usage,
        cost, error, created_at, updated_at
    ) values (
        p_id, p_session_id, v_user, v_seq, p_role, p_status, p_parent_id, p_model, p_content,
        p_parts, p_usage, p_cost, p_error, p_created_at, p_updated_at
    );
    return v_seq;
end;
$$;

-- Apply a PartsPatch (keep, drop, append_text, tail, content_append) to a message being
-- generated and set its usage and cost, and its status and error when given (not null); with
-- p_step_model, add that step's usage to the session totals in the same transaction. False
-- (and nothing written) if the message does not exist in that session.
create function public.write_draft(
    p_session_id text,
    p_message_id text,
    p_keep integer,
    p_drop integer,
    p_append_text text,
    p_tail jsonb,
    p_content_append text,
    p_usage jsonb,
    p_cost double precision,
    p_now timestamptz,
    p_status text default null,
    p_error text default null,
    p_step_model text default null,
    p_step_usage jsonb default null,
    p_step_cost double precision default null
) returns boolean
language plpgsql security definer set search_path = ''
as $$
begin
    update public.messages
       set parts = public.apply_parts_patch(parts, p_keep, p_drop, p_append_text, p_tail),
           content = content || coalesce(p_content_append, ''),
           usage = p_usage,
           cost = p_cost,
           updated_at = p_now,
           status = coalesce(p_status, status),
           error = coalesce(p_error, error)
     where id = p_message_id and session_id = p_session_id;
    if not found then
        return false;
    end if;
    if p_step_model is not null then
        perform public.record_step_usage(
            p_session_id, p_step_model, coalesce(p_step_usage, '{}'::jsonb),
            coalesce(p_step_cost, 0)
        );
    end if;
    return true;
end;
$$;

-- EXECUTE is granted to PUBLIC by default (and to anon and authenticated by Supabase's default
-- privileges): these functions write any session's rows, so only service_role may call them.
revoke execute on function
    public.apply_parts_patch(jsonb, integer, integer, text, jsonb),
    public.record_step_usage(text, text, jsonb, double precision),
    public.add_message(
        text, text, text, text, jsonb, text, text, text, jsonb, double precision, text,
        timestamptz, timestamptz, timestamptz
    ),
    public.write_draft(
        text, text, integer, integer, text, jsonb, text, jsonb, double precision, timestamptz,
        text, text, text, jsonb, double precision
    )
    from public, anon, authenticated;
grant execute on function
    public.apply_parts_patch(jsonb, integer, integer, text, jsonb),
    public.record_step_usage(text, text, jsonb, double precision),
    public.add_message(
        text, text, text, text, jsonb, text, text, text, jsonb, double precision, text,
        timestamptz, timestamptz, timestamptz
    ),
    public.write_draft(
        text, text, integer, integer, text, jsonb, text, jsonb, double precision, timestamptz,
        text, text, text, jsonb, double precision
    )
    to service_role;
