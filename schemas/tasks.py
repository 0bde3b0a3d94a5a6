"""Every Celery task name, in one place.

The bot, the workers and the beat table refer to tasks by these names only, never by importing
the task functions: a rename of a function never strands messages already in Redis, and the bot
process never loads the workers' code.
"""

# The job runner (workers/queue/tasks.py). Each takes a job id.
PROVISION = "trainops.jobs.provision"  # launch (or adopt) the job's machine
TERMINATE = "trainops.jobs.terminate"  # terminate every machine of a job, verified
# Periodic (workers/queue/schedule.py): no arguments.
MONITOR_TICK = "trainops.jobs.monitor_tick"  # meter, guard, recover, finish, re-enqueue
REAP = "trainops.jobs.reap"  # terminate tagged machines no attempt owns
EXPIRE_QUOTES = "trainops.jobs.expire_quotes"  # quotes nobody decided on in time

# Slack side (bot/slack/tasks.py): they answer in a channel.
SLACK_QUOTE = "trainops.slack.quote"  # price a parsed /train request and post the quote
SLACK_RESUME = "trainops.slack.resume"  # quote the rest of a stopped job as a new job

# Modules that define the tasks above; the worker loads them by name (configuration, not an
# import from workers into bot).
TASK_MODULES = ("workers.queue.tasks", "bot.slack.tasks")
