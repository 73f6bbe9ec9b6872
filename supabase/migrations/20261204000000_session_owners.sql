-- Session owners. The server now records who owns each session (sessions.user_id, copied to the
-- session's rows by the SQL functions, as before); rows it wrote before then have no owner and
-- belong to the local user, the nil UUID (opencode.core.users.LOCAL_USER_ID), as SQLite's
-- migration 3 does for its sessions.
--
-- Never edit this file once it has shipped: add a new migration.

update public.sessions
   set user_id = '00000000-0000-0000-0000-000000000000'
 where user_id is null;

-- A session's rows carry its owner, since RLS reads user_id on each table: a row without one
-- gets its session's (never null after the update above).
update public.messages as t set user_id = s.user_id
  from public.sessions as s where s.id = t.session_id and t.user_id is null;
update public.model_usage as t set user_id = s.user_id
  from public.sessions as s where s.id = t.session_id and t.user_id is null;
update public.todos as t set user_id = s.user_id
  from public.sessions as s where s.id = t.session_id and t.user_id is null;
update public.questions as t set user_id = s.user_id
  from public.sessions as s where s.id = t.session_id and t.user_id is null;
update public.compactions as t set user_id = s.user_id
  from public.sessions as s where s.id = t.session_id and t.user_id is null;

-- One owner's pending questions, oldest first: a range of this index, with no sort.
create index questions_pending_by_user on public.questions (user_id, created_at, id)
    where status = 'pending';

-- Supabase's default privileges grant every new sequence to anon and authenticated. The identity
-- sequence behind model_usage.first_use (the order models were first used in) is the store's:
-- with UPDATE on it a user could setval() it and reorder every session's usage rows. Inserting
-- through the identity column needs no privilege on the sequence.
revoke all on sequence public.model_usage_first_use_seq from public, anon, authenticated;
